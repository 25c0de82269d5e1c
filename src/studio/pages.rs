//! The studio's pages, from minijinja templates compiled into the binary
//! with HTML escaping on for every value, and the run state its script reads.

use std::path::Path;
use std::sync::OnceLock;

use minijinja::Environment;
use serde::Serialize;

use crate::critique::Verdict;
use crate::executor::{Defect, Outcome};
use crate::report::{read_run, AttemptRecord, RunOutcome, RunRecord, RunStatus, Stage};

pub const STUDIO_JS: &str = include_str!("studio.js");

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        crate::report::html::templates(&[
            ("studio.html", include_str!("studio.html")),
            ("runs.html", include_str!("runs.html")),
            ("run.html", include_str!("run.html")),
        ])
    })
}

fn fill(name: &str, context: impl Serialize) -> Result<String, minijinja::Error> {
    env()
        .get_template(name)?
        .render(minijinja::Value::from(minijinja::value::Serde(context)))
}

/// One run on the runs page.
#[derive(Debug, Serialize)]
pub struct RunRow {
    pub id: String,
    pub title: String,
    pub outcome: String,
    pub attempts: usize,
    /// Seconds since the epoch of run.json's last change (newest first).
    pub modified: u64,
    pub thumbnail: bool,
}

/// One example part.
#[derive(Debug, Serialize)]
pub struct Example {
    pub name: String,
    pub description: String,
}

/// The runs in `runs` (folders with a run.json, and the items of batch and
/// bench outputs, `BATCH~ITEM`), newest first.
pub fn list_runs(runs: &Path) -> Vec<RunRow> {
    let mut rows = Vec::new();
    for entry in std::fs::read_dir(runs).into_iter().flatten().flatten() {
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let dir = entry.path();
        if let Some(row) = run_row(&name, &dir) {
            rows.push(row);
            continue;
        }
        let items = dir.join(crate::batch::ITEMS_DIR);
        for item in std::fs::read_dir(items).into_iter().flatten().flatten() {
            if let Some(item_name) = item.file_name().to_str() {
                rows.extend(run_row(&format!("{name}~{item_name}"), &item.path()));
            }
        }
    }
    rows.sort_by(|a, b| b.modified.cmp(&a.modified).then(a.id.cmp(&b.id)));
    rows
}

/// The row of the run in `dir`, when it is one.
fn run_row(id: &str, dir: &Path) -> Option<RunRow> {
    if !super::guard::valid_id(id) {
        return None;
    }
    let record = read_run(dir).ok()?;
    let modified = std::fs::metadata(dir.join(crate::report::RUN_FILE))
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    Some(RunRow {
        id: id.to_string(),
        title: first_line(&record.prompt),
        outcome: record.outcome.as_str().to_string(),
        attempts: record.attempts.len(),
        modified,
        thumbnail: dir.join(crate::render::SHEET_FILE).is_file(),
    })
}

/// The example parts in `dir`: `<name>.py`, described by their first comment.
pub fn list_examples(dir: &Path) -> Vec<Example> {
    let mut examples: Vec<Example> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let path = entry.path();
            if path.extension()? != "py" {
                return None;
            }
            let name = path.file_stem()?.to_str()?.to_string();
            let code = std::fs::read_to_string(&path).ok()?;
            let description = description(&code).unwrap_or_else(|| name.replace('_', " "));
            Some(Example { name, description })
        })
        .collect();
    examples.sort_by(|a, b| a.name.cmp(&b.name));
    examples
}

/// A script's first comment line, e.g. "A flat washer: 24 mm outside, …".
pub fn description(code: &str) -> Option<String> {
    let line = code.lines().next()?.strip_prefix('#')?.trim();
    (!line.is_empty()).then(|| line.to_string())
}

fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    if line.chars().count() > 90 {
        format!("{}…", line.chars().take(89).collect::<String>())
    } else {
        line.to_string()
    }
}

pub fn runs_page(
    runs: &[RunRow],
    examples: &[Example],
    no_llm: Option<&str>,
    settings: &crate::report::RunSettings,
) -> Result<String, minijinja::Error> {
    fill(
        "runs.html",
        serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "runs": runs,
            "examples": examples,
            "no_llm": no_llm,
            "model": settings.llm.as_ref().map_or("", |l| l.model.as_str()),
            "max_repairs": settings.max_repairs,
            "max_refines": settings.max_refines,
        }),
    )
}

/// A run's page; `record` is `None` for a run starting here that has not
/// written its record yet (its events fill the page in).
pub fn run_page(
    id: &str,
    record: Option<&RunRecord>,
    three: bool,
    llm: bool,
) -> Result<String, minijinja::Error> {
    let (title, state) = match record {
        Some(record) => (first_line(&record.prompt), RunState::of(id, record)),
        None => ("starting…".to_string(), RunState::starting(id)),
    };
    fill(
        "run.html",
        serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "id": id,
            "title": title,
            "state": serde_json::to_string(&state).expect("a run state serialises"),
            "three": three,
            "llm": llm,
        }),
    )
}

/// What the run page shows and its script updates (`/runs/ID/events`
/// sends it whole on every change): the run's history, and the result's
/// facts, parameters, checks and files.
#[derive(Debug, Clone, Serialize)]
pub struct RunState {
    pub id: String,
    pub prompt: String,
    pub status: RunStatus,
    /// Whether the run is going on in this studio, whatever run.json says yet.
    pub active: bool,
    /// What the loop is doing now, while it is going on here.
    pub stage: Option<String>,
    /// The reply the LLM is writing now, while it streams.
    pub writing: Option<crate::pipeline::Written>,
    pub stop_reason: String,
    pub run_error: Option<String>,
    pub history: Vec<AttemptRow>,
    pub outcome: RunOutcome,
    pub attempts: usize,
    /// The number of the attempt whose model is the result.
    pub result: Option<u32>,
    pub facts: Option<Facts>,
    pub parameters: Vec<ParameterRow>,
    pub checks: Vec<crate::checks::CheckResult>,
    /// The result's named parts, when it has several.
    pub parts: Vec<PartRow>,
    /// The result's glTF model and contact sheet, as studio URLs.
    pub model: Option<String>,
    pub sheet: Option<String>,
    pub report: String,
    /// Why the change just asked for built no model (a tweak's answer only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One attempt in a run's history.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptRow {
    pub number: u32,
    pub stage: Stage,
    /// The error kind and its line, when the attempt built no model.
    pub error: Option<String>,
    pub verdict: Option<Verdict>,
    pub overruled: bool,
    /// The checks' tally, "3/4 checks passed".
    pub checks: Option<String>,
    /// "VIEW: caption", one for each view.
    pub captions: Vec<String>,
    /// The parameter changes that made a tweak, "width 40 → 50".
    pub changes: Vec<String>,
    /// What is wrong with the shape and how to fix it, or what was noticed
    /// or healed: "open-shell: … Fix: …".
    pub diagnosis: Vec<String>,
    /// The contact sheet of a shape that was built but refused, where it
    /// is open drawn in red, as a studio URL.
    pub refused_sheet: Option<String>,
}

/// The result's geometry facts the run page shows.
#[derive(Debug, Clone, Serialize)]
pub struct Facts {
    pub size: [f64; 3],
    pub min: [f64; 3],
    pub volume: f64,
    pub area: f64,
    pub solids: u32,
    pub faces: u32,
    pub valid: bool,
}

/// One named part of the result, as the run page's parts list shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PartRow {
    pub name: String,
    /// `#rrggbb`.
    pub color: String,
    pub size: [f64; 3],
    pub volume: f64,
    /// Its STL, as a studio URL.
    pub stl: String,
    /// The parts it overlaps, "lid (12.5 mm³)".
    pub overlaps: Vec<String>,
}

/// A named parameter as the run page's tweak form shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ParameterRow {
    pub name: String,
    pub value: serde_json::Number,
    pub text: String,
    pub kind: crate::params::Kind,
    pub comment: String,
    /// Why it stays whole, when the script uses it as a count.
    pub count: Option<String>,
}

impl RunState {
    /// The state of a run that has no record yet: starting here.
    pub fn starting(id: &str) -> RunState {
        RunState {
            id: id.to_string(),
            prompt: String::new(),
            status: RunStatus::Running,
            active: true,
            stage: Some("starting".to_string()),
            writing: None,
            stop_reason: String::new(),
            run_error: None,
            history: Vec::new(),
            outcome: RunOutcome::Pending,
            attempts: 0,
            result: None,
            facts: None,
            parameters: Vec::new(),
            checks: Vec::new(),
            parts: Vec::new(),
            model: None,
            sheet: None,
            report: report_url(id),
            error: None,
        }
    }

    /// The state of the run `record` holds.
    pub fn of(id: &str, record: &RunRecord) -> RunState {
        let chosen = record.chosen_attempt();
        let facts = chosen.and_then(|a| a.result.facts()).map(|f| Facts {
            size: f.bbox.size,
            min: f.bbox.min,
            volume: f.volume,
            area: f.area,
            solids: f.solids,
            faces: f.faces,
            valid: f.valid,
        });
        let parameters = chosen
            .map(|a| &a.result.parameters[..])
            .unwrap_or_default()
            .iter()
            .map(|p| ParameterRow {
                name: p.name.clone(),
                value: p.value.clone(),
                text: p.text.clone(),
                kind: p.kind,
                comment: p.comment.clone(),
                count: p.count.clone(),
            })
            .collect();
        let parts = chosen
            .and_then(|a| a.result.facts().map(|f| (a, f)))
            .map(|(a, f)| {
                let files = crate::mesh::part_file_names(f.parts.iter().map(|p| p.name.as_str()));
                f.parts
                    .iter()
                    .zip(files)
                    .map(|(p, file)| PartRow {
                        name: p.name.clone(),
                        color: p.color.clone(),
                        size: p.bbox.size,
                        volume: p.volume,
                        stl: format!(
                            "/runs/{id}/files/{}/{}/{file}",
                            a.dir,
                            crate::mesh::PARTS_DIR
                        ),
                        overlaps: f
                            .pairs
                            .iter()
                            .filter(|pair| pair.overlap > 0.0 && pair.parts.contains(&p.name))
                            .map(|pair| {
                                let other = if pair.parts[0] == p.name {
                                    &pair.parts[1]
                                } else {
                                    &pair.parts[0]
                                };
                                format!("{other} ({:.1} mm³)", pair.overlap)
                            })
                            .collect(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let history = record
            .attempts
            .iter()
            .map(|a| AttemptRow::of(id, a))
            .collect();
        RunState {
            id: id.to_string(),
            prompt: record.prompt.clone(),
            status: record.status,
            active: false,
            stage: None,
            writing: None,
            stop_reason: record.stop_reason.clone(),
            run_error: record.error.clone(),
            history,
            outcome: record.outcome,
            attempts: record.attempts.len(),
            result: chosen.map(|a| a.number),
            facts,
            parameters,
            checks: chosen.map(|a| a.result.checks.clone()).unwrap_or_default(),
            parts,
            model: chosen.map(|a| format!("/runs/{id}/files/{}/model.glb", a.dir)),
            sheet: chosen.map(|a| sheet_url(id, &a.dir)),
            report: report_url(id),
            error: None,
        }
    }
}

impl AttemptRow {
    fn of(id: &str, attempt: &AttemptRecord) -> AttemptRow {
        let error = match &attempt.result.outcome {
            Outcome::Error { kind, line, .. } => Some(match line {
                Some(line) => format!("{kind} at line {line}"),
                None => kind.to_string(),
            }),
            Outcome::Ok { .. } => None,
        };
        let critique = attempt.critique.as_ref();
        AttemptRow {
            number: attempt.number,
            stage: attempt.stage,
            error,
            verdict: critique.and_then(|c| c.verdict),
            overruled: critique.is_some_and(|c| c.overruled),
            checks: attempt.checks().map(|t| t.to_string()),
            captions: attempt
                .captions
                .iter()
                .flatten()
                .map(|c| format!("{}: {}", c.view, c.text))
                .collect(),
            changes: attempt.changes.iter().map(ToString::to_string).collect(),
            diagnosis: attempt
                .result
                .diagnosis
                .iter()
                .map(Defect::with_fix)
                .collect(),
            refused_sheet: (!attempt.executed() && attempt.timings.render_ms.is_some())
                .then(|| sheet_url(id, &attempt.dir)),
        }
    }
}

/// The contact sheet of attempt folder `dir` of run `id`, as a studio URL.
fn sheet_url(id: &str, dir: &str) -> String {
    format!("/runs/{id}/files/{dir}/{}", crate::render::SHEET_FILE)
}

fn report_url(id: &str) -> String {
    format!("/runs/{id}/files/{}", crate::report::html::REPORT_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_attempt_that_was_drawn_links_its_sheet() {
        use crate::executor::{ErrorKind, ExecReport, Outcome};
        let attempt = |outcome: Outcome, drawn: bool| AttemptRecord {
            changes: Vec::new(),
            number: 1,
            request: 1,
            stage: crate::report::Stage::Generate,
            round: 0,
            parent: None,
            dir: "attempts/01".into(),
            code: String::new(),
            result: ExecReport::of(outcome),
            captions: None,
            critique: None,
            usage: Default::default(),
            timings: crate::report::AttemptTimings {
                render_ms: drawn.then_some(100.0),
                ..Default::default()
            },
        };
        let refused = || Outcome::Error {
            kind: ErrorKind::InvalidShape,
            message: "open".into(),
            line: None,
            facts: None,
        };
        let row = AttemptRow::of("r1", &attempt(refused(), true));
        assert_eq!(
            row.refused_sheet.as_deref(),
            Some("/runs/r1/files/attempts/01/sheet.png")
        );
        assert_eq!(
            AttemptRow::of("r1", &attempt(refused(), false)).refused_sheet,
            None
        );
    }

    #[test]
    fn pages_escape_what_they_show() {
        let evil = "<script>alert(1)</script>";
        let html = runs_page(
            &[RunRow {
                id: "x".into(),
                title: evil.into(),
                outcome: "match".into(),
                attempts: 1,
                modified: 0,
                thumbnail: false,
            }],
            &[Example {
                name: "washer".into(),
                description: evil.into(),
            }],
            Some(evil),
            &crate::report::RunSettings {
                llm: None,
                max_repairs: 3,
                max_refines: 3,
                captioner: None,
                caption_beams: None,
                view_size: 384,
                exec_timeout_secs: 60.0,
                memory_limit_mib: 4096,
                prompts: Vec::new(),
                checks: true,
            },
        )
        .unwrap();
        assert!(!html.contains(evil), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert_eq!(
            description("# A washer.\nimport Part\n").as_deref(),
            Some("A washer.")
        );
        assert_eq!(description("import Part\n"), None);
    }
}
