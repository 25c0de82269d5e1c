//! The run as a page: `report.html` in every run folder (and `cadloop exec`
//! output); [`super::index`] builds batch and bench folders' `index.html`
//! from the same templates.
//!
//! One self-contained file each: the style sheet is inline, images are
//! referenced relatively (the page works from the folder, copied or served),
//! and nothing runs in the browser. The pages are minijinja templates
//! compiled into the binary, with HTML escaping on for every value: prompts,
//! code, captions and critiques are untrusted text.

use std::path::Path;
use std::sync::OnceLock;

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;

use super::{diff, AttemptRecord, RunRecord, RunStatus, Stage};
use crate::executor::{ExecReport, GeometryFacts, IgnoredKind, Outcome, MODEL_FILES};
use crate::files;
use crate::render::{View, SHEET_FILE, VIEWS_DIR};

/// A run's page, in its folder.
pub const REPORT_FILE: &str = "report.html";

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        templates(&[
            ("base.html", include_str!("base.html")),
            ("page.html", include_str!("page.html")),
            ("index.html", include_str!("index.html")),
            ("facts.html", include_str!("facts.html")),
            ("style.css", include_str!("style.css")),
        ])
    })
}

/// An environment of compiled-in templates as cadloop's pages use them:
/// undefined values are errors, every value is HTML-escaped, and a block
/// tag's line break is dropped.
pub fn templates(list: &[(&'static str, &'static str)]) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .build()
            .expect("default delimiters"),
    );
    for &(name, text) in list {
        env.add_template(name, text)
            .expect("the page templates are checked by the tests");
    }
    env
}

pub(super) fn fill(name: &str, context: impl Serialize) -> std::io::Result<String> {
    env()
        .get_template(name)
        .and_then(|t| t.render(minijinja::Value::from(minijinja::value::Serde(context))))
        .map_err(|e| std::io::Error::other(format!("cannot fill the {name} template: {e:#}")))
}

/// What `page.html` shows.
#[derive(Debug, Serialize)]
struct Page {
    version: &'static str,
    kind: String,
    title: String,
    prompt: Option<String>,
    outcome: String,
    stop_reason: String,
    running: bool,
    error: Option<String>,
    requests: Vec<RequestView>,
    chosen: Option<ChoiceView>,
    verdict: Option<String>,
    sheet: Option<String>,
    views: Vec<ViewImage>,
    facts: Option<FactsView>,
    downloads: Vec<Download>,
    attempts: Vec<AttemptView>,
    footer: Vec<String>,
    /// The result's checks, e.g. "checks: 5/5", and whether all pass.
    checks: Option<String>,
    checks_pass: bool,
    /// Every request's checks as written and changed.
    checks_written: Vec<ChecksView>,
}

#[derive(Debug, Serialize)]
struct ChecksView {
    request: u32,
    attempt: u32,
    source: String,
    reason: Option<String>,
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct CheckView {
    status: &'static str,
    call: String,
    measured: String,
    expected: String,
    message: String,
}

#[derive(Debug, Serialize)]
struct RequestView {
    kind: &'static str,
    text: String,
    from_attempt: Option<u32>,
    attempts: Vec<u32>,
    outcome: &'static str,
    chosen: Option<u32>,
}

#[derive(Debug, Serialize)]
struct ChoiceView {
    attempt: u32,
    why: String,
}

#[derive(Debug, Serialize)]
struct ViewImage {
    name: &'static str,
    src: String,
}

#[derive(Debug, Serialize)]
struct FactsView {
    size: String,
    min: String,
    max: String,
    volume: String,
    area: String,
    solids: u32,
    valid: bool,
    faces: u32,
    face_types: String,
    /// A result of named parts: "name (#rrggbb): size, volume".
    parts: Vec<PartView>,
    /// Pairs of parts that overlap, with by how much.
    overlaps: Vec<String>,
}

#[derive(Debug, Serialize)]
struct PartView {
    name: String,
    color: String,
    size: String,
    volume: String,
}

#[derive(Debug, Serialize)]
struct Download {
    name: &'static str,
    href: String,
    size: String,
}

#[derive(Debug, Serialize)]
struct AttemptView {
    number: u32,
    request: Option<u32>,
    stage: &'static str,
    round: u32,
    parent: Option<u32>,
    chosen: bool,
    dir: Option<String>,
    timings: String,
    tokens: u64,
    error: Option<ErrorView>,
    facts: Option<FactsView>,
    sheet: Option<String>,
    captions: Vec<CaptionView>,
    critique: Option<CritiqueView>,
    output: Option<String>,
    ignored: Vec<IgnoredView>,
    /// What is wrong with the shape, or was noticed or healed.
    diagnosis: Vec<DefectView>,
    /// A tweak's changes, e.g. "LENGTH 40 → 45".
    changes: Vec<String>,
    parameters: Vec<ParameterView>,
    checks: Vec<CheckView>,
    checks_tally: String,
    diff: Option<Vec<diff::DiffLine>>,
    code: Vec<String>,
}

/// One named number of the attempt's code.
#[derive(Debug, Serialize)]
struct ParameterView {
    name: String,
    value: String,
    comment: String,
    /// A tweak set it.
    changed: bool,
}

/// A GUI call or write of the code that did not happen, with its source line.
#[derive(Debug, Serialize)]
struct IgnoredView {
    kind: &'static str,
    line: Option<u32>,
    call: String,
    source: String,
    detail: String,
}

#[derive(Debug, Serialize)]
struct ErrorView {
    kind: String,
    line: Option<u32>,
    message: String,
}

#[derive(Debug, Serialize)]
struct CaptionView {
    view: String,
    text: String,
    score: f32,
}

#[derive(Debug, Serialize)]
struct CritiqueView {
    verdict: String,
    note: Option<&'static str>,
    overruled: bool,
    feedback: String,
}

/// The page for a run folder, from its record and the files present.
pub fn run_page(dir: &Path, record: &RunRecord) -> std::io::Result<String> {
    let chosen = record.chosen.as_ref();
    let chosen_attempt = record.chosen_attempt();
    let many_requests = record.requests.len() > 1;
    let attempts = record
        .attempts
        .iter()
        .map(|a| {
            let parent = a
                .parent
                .and_then(|p| record.attempts.get(p as usize - 1))
                .map(|p| p.code.as_str());
            attempt_view(dir, a, parent, chosen.map(|c| c.attempt), many_requests)
        })
        .collect();
    let requests = record
        .requests
        .iter()
        .map(|r| RequestView {
            kind: match r.kind {
                super::RequestKind::Generate => "prompt",
                super::RequestKind::Edit => "edit",
                super::RequestKind::Tweak => "tweak",
                super::RequestKind::Given => "given code",
            },
            text: r.text.clone(),
            from_attempt: r.from_attempt,
            attempts: r.attempts.clone(),
            outcome: r.outcome.as_str(),
            chosen: r.chosen.as_ref().map(|c| c.attempt),
        })
        .collect();
    let status = match record.status {
        RunStatus::Running => "running",
        RunStatus::Finished => record.outcome.as_str(),
        RunStatus::Stopped if record.outcome.has_model() => record.outcome.as_str(),
        RunStatus::Stopped => "stopped",
    };
    let page = Page {
        version: env!("CARGO_PKG_VERSION"),
        kind: "cadloop run".into(),
        title: title_of(&record.prompt),
        prompt: Some(record.prompt.clone()),
        outcome: status.to_string(),
        stop_reason: record.stop_reason.clone(),
        running: record.status == RunStatus::Running,
        error: record.error.clone(),
        requests,
        chosen: chosen.map(|c| ChoiceView {
            attempt: c.attempt,
            why: c.why.clone(),
        }),
        verdict: chosen_attempt
            .and_then(|a| a.critique.as_ref())
            .and_then(|c| c.verdict)
            .map(|v| v.as_str().to_uppercase()),
        sheet: present(dir, SHEET_FILE),
        views: view_images(dir, VIEWS_DIR),
        facts: chosen_attempt
            .and_then(|a| a.result.facts())
            .map(facts_view),
        downloads: downloads(dir),
        attempts,
        footer: run_footer(record),
        checks: chosen_attempt
            .and_then(AttemptRecord::checks)
            .map(|t| t.to_string()),
        checks_pass: chosen_attempt
            .and_then(AttemptRecord::checks)
            .is_some_and(|t| t.all_pass()),
        checks_written: checks_written(record),
    };
    fill("page.html", page)
}

/// Every request's checks as written and changed, in order.
fn checks_written(record: &RunRecord) -> Vec<ChecksView> {
    record
        .requests
        .iter()
        .flat_map(|r| {
            r.checks.iter().map(|c| ChecksView {
                request: r.number,
                attempt: c.attempt,
                source: c.source.trim_end().to_string(),
                reason: c.reason.clone(),
                error: c.error.clone(),
            })
        })
        .collect()
}

/// The run page's footer: the LLM, its use, the time spent.
fn run_footer(record: &RunRecord) -> Vec<String> {
    let usage = record.usage;
    let llm = match &record.settings.llm {
        Some(llm) => format!("LLM {} at {}", llm.model, llm.base_url),
        None => "no LLM".to_string(),
    };
    vec![
        format!(
            "{llm} · {} calls · {} tokens ({} prompt, {} completion)",
            record.llm_calls,
            usage.total_tokens,
            usage.prompt_tokens,
            usage.completion_tokens
        ),
        format!(
            "{:.1} s in all: LLM {:.1} s, FreeCAD {:.1} s, rendering {:.1} s, captions {:.1} s · the critique saw {}",
            record.timings.total_ms / 1e3,
            record.timings.llm_ms / 1e3,
            record.timings.exec_ms / 1e3,
            record.timings.render_ms / 1e3,
            record.timings.caption_ms / 1e3,
            match record.critique_basis {
                super::CritiqueBasis::CaptionsAndGeometry => "captions and geometry",
                super::CritiqueBasis::Geometry => "geometry only",
            }
        ),
        format!(
            "Written by cadloop {} · the whole record is in run.json, the LLM exchanges in transcript.jsonl",
            env!("CARGO_PKG_VERSION")
        ),
    ]
}

/// Writes `report.html` into a run folder.
pub fn write_run_page(dir: &Path, record: &RunRecord) -> std::io::Result<()> {
    let html = run_page(dir, record)?;
    files::write_atomically(&dir.join(REPORT_FILE), html.as_bytes())
}

/// The page for `cadloop exec` output: one script, its result and views.
pub fn exec_page(
    dir: &Path,
    script: &str,
    code: &str,
    report: &ExecReport,
) -> std::io::Result<String> {
    let attempt = AttemptRecord {
        changes: Vec::new(),
        number: 1,
        request: 1,
        stage: Stage::Generate,
        round: 0,
        parent: None,
        dir: String::new(),
        code: code.to_string(),
        result: report.clone(),
        captions: None,
        critique: None,
        usage: Default::default(),
        timings: super::AttemptTimings {
            exec_ms: report.timings.total_ms.unwrap_or(0.0),
            ..Default::default()
        },
    };
    let mut view = attempt_view(dir, &attempt, None, None, false);
    view.stage = "script";
    view.dir = None;
    let page = Page {
        version: env!("CARGO_PKG_VERSION"),
        kind: "cadloop exec".into(),
        title: script.to_string(),
        prompt: None,
        outcome: if report.is_ok() { "ok" } else { "failed" }.into(),
        stop_reason: String::new(),
        running: false,
        error: None,
        requests: Vec::new(),
        chosen: None,
        verdict: None,
        sheet: present(dir, SHEET_FILE),
        views: view_images(dir, VIEWS_DIR),
        facts: report.facts().map(facts_view),
        downloads: downloads(dir),
        attempts: vec![view],
        footer: vec![format!(
            "Written by cadloop {} · the result is in result.json",
            env!("CARGO_PKG_VERSION")
        )],
        checks: None,
        checks_pass: false,
        checks_written: Vec::new(),
    };
    fill("page.html", page)
}

/// Writes `cadloop exec`'s page: the script, what it built and the views.
pub fn write_exec_page(
    dir: &Path,
    script: &str,
    code: &str,
    report: &ExecReport,
) -> std::io::Result<()> {
    let html = exec_page(dir, script, code, report)?;
    files::write_atomically(&dir.join(REPORT_FILE), html.as_bytes())
}

fn attempt_view(
    dir: &Path,
    a: &AttemptRecord,
    parent_code: Option<&str>,
    chosen: Option<u32>,
    show_request: bool,
) -> AttemptView {
    let error = match &a.result.outcome {
        Outcome::Ok { .. } => None,
        Outcome::Error {
            kind,
            message,
            line,
            ..
        } => Some(ErrorView {
            kind: kind.to_string(),
            line: *line,
            message: message.clone(),
        }),
    };
    let sheet_path = if a.dir.is_empty() {
        None
    } else {
        present(dir, &format!("{}/{SHEET_FILE}", a.dir))
    };
    AttemptView {
        number: a.number,
        request: show_request.then_some(a.request),
        stage: a.stage.as_str(),
        round: a.round,
        parent: a.parent,
        chosen: chosen == Some(a.number),
        dir: (!a.dir.is_empty()).then(|| a.dir.clone()),
        timings: timings_line(&a.timings),
        tokens: a.usage.total_tokens + a.critique.as_ref().map_or(0, |c| c.usage.total_tokens),
        facts: if error.is_none() {
            a.result.facts().map(facts_view)
        } else {
            None
        },
        error,
        sheet: sheet_path,
        captions: a
            .captions
            .iter()
            .flatten()
            .map(|c| CaptionView {
                view: c.view.name().to_string(),
                text: c.text.clone(),
                score: c.score,
            })
            .collect(),
        critique: a.critique.as_ref().map(critique_view),
        output: Some(a.result.output.text.trim_end().to_string()).filter(|t| !t.is_empty()),
        ignored: ignored_views(a),
        diagnosis: a.result.diagnosis.iter().map(DefectView::of).collect(),
        changes: a.changes.iter().map(ToString::to_string).collect(),
        parameters: a
            .result
            .parameters
            .iter()
            .map(|p| ParameterView {
                name: p.name.clone(),
                value: p.text.clone(),
                comment: p.comment.clone(),
                changed: a.changes.iter().any(|c| c.name == p.name),
            })
            .collect(),
        checks: a.result.checks.iter().map(check_view).collect(),
        checks_tally: a.checks().map(|t| t.to_string()).unwrap_or_default(),
        diff: parent_code.map(|old| diff::lines(old, &a.code)),
        code: a.code.lines().map(str::to_string).collect(),
    }
}

fn check_view(c: &crate::checks::CheckResult) -> CheckView {
    CheckView {
        status: c.status.as_str(),
        call: c.call.clone(),
        measured: c.measured.clone(),
        expected: c.expected.clone(),
        message: c.message.clone(),
    }
}

fn critique_view(c: &super::CritiqueRecord) -> CritiqueView {
    CritiqueView {
        verdict: c
            .verdict
            .map_or("none given".to_string(), |v| v.as_str().to_uppercase()),
        note: match (c.verdict, c.stated) {
            (Some(_), false) => Some("no verdict line; inferred from the rewrite"),
            _ => None,
        },
        overruled: c.overruled,
        feedback: c.feedback.clone(),
    }
}

/// An attempt's time per stage, in one line.
fn timings_line(t: &super::AttemptTimings) -> String {
    let mut timings = vec![];
    if t.llm_ms > 0.0 {
        timings.push(format!("LLM {:.1} s", t.llm_ms / 1e3));
    }
    timings.push(format!("FreeCAD {:.2} s", t.exec_ms / 1e3));
    for (name, ms) in [
        ("render", t.render_ms),
        ("captions", t.caption_ms),
        ("critique", t.critique_ms),
    ] {
        if let Some(ms) = ms {
            timings.push(format!("{name} {:.2} s", ms / 1e3));
        }
    }
    timings.join(" · ")
}

/// One defect of a shape, as the page lists it.
#[derive(Debug, Serialize)]
struct DefectView {
    kind: String,
    /// "error", "note" or "healed".
    severity: &'static str,
    line: Option<u32>,
    message: String,
    hint: String,
}

impl DefectView {
    fn of(d: &crate::executor::Defect) -> DefectView {
        DefectView {
            kind: d.kind.clone(),
            severity: match (d.healed, d.severity) {
                (true, _) => "healed",
                (false, crate::executor::Severity::Error) => "error",
                (false, crate::executor::Severity::Note) => "note",
            },
            line: d.line,
            message: d.message.clone(),
            hint: d.hint.clone(),
        }
    }
}

/// The lines of the attempt's code that did nothing headless, with their source.
fn ignored_views(a: &AttemptRecord) -> Vec<IgnoredView> {
    a.result
        .ignored
        .iter()
        .map(|i| IgnoredView {
            kind: match i.kind {
                IgnoredKind::Gui => "GUI",
                IgnoredKind::Write => "write",
            },
            line: i.line,
            call: i.call.clone(),
            source: i
                .line
                .and_then(|n| a.code.lines().nth(n.saturating_sub(1) as usize))
                .map(|l| l.trim().to_string())
                .unwrap_or_default(),
            detail: i.detail.clone(),
        })
        .collect()
}

fn facts_view(f: &GeometryFacts) -> FactsView {
    let triple = |v: [f64; 3]| format!("({:.2}, {:.2}, {:.2})", v[0], v[1], v[2]);
    let [x, y, z] = f.bbox.size;
    FactsView {
        size: format!("{x:.2} × {y:.2} × {z:.2}"),
        min: triple(f.bbox.min),
        max: triple(f.bbox.max),
        volume: format!("{:.2}", f.volume),
        area: format!("{:.2}", f.area),
        solids: f.solids,
        valid: f.valid,
        faces: f.faces,
        face_types: f
            .face_types
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect::<Vec<_>>()
            .join(", "),
        parts: f
            .parts
            .iter()
            .map(|p| {
                let [x, y, z] = p.bbox.size;
                let [r, g, b] = p.rgb();
                PartView {
                    name: p.name.clone(),
                    // From the bytes, so the page holds only a colour there.
                    color: format!("#{r:02x}{g:02x}{b:02x}"),
                    size: format!("{x:.2} × {y:.2} × {z:.2}"),
                    volume: format!("{:.2}", p.volume),
                }
            })
            .collect(),
        overlaps: f
            .pairs
            .iter()
            .filter(|p| p.overlap > 0.0)
            .map(|p| format!("{} and {}: {:.2} mm³", p.parts[0], p.parts[1], p.overlap))
            .collect(),
    }
}

/// `relative` when the file exists in `dir`.
pub(super) fn present(dir: &Path, relative: &str) -> Option<String> {
    dir.join(relative).is_file().then(|| relative.to_string())
}

fn view_images(dir: &Path, folder: &str) -> Vec<ViewImage> {
    View::ALL
        .iter()
        .filter_map(|v| {
            present(dir, &format!("{folder}/{}.png", v.name())).map(|src| ViewImage {
                name: v.name(),
                src,
            })
        })
        .collect()
}

fn downloads(dir: &Path) -> Vec<Download> {
    MODEL_FILES
        .iter()
        .filter_map(|name| {
            let meta = std::fs::metadata(dir.join(name)).ok()?;
            meta.is_file().then(|| Download {
                name,
                href: name.to_string(),
                size: human_size(meta.len()),
            })
        })
        .collect()
}

fn human_size(bytes: u64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} B"),
        b if b < 1024 * 1024 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)),
    }
}

/// The first line of a prompt, cut to a title's length.
pub(super) fn title_of(prompt: &str) -> String {
    let line = prompt.lines().next().unwrap_or("").trim();
    if line.chars().count() > 80 {
        format!("{}…", line.chars().take(79).collect::<String>())
    } else {
        line.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_titles_are_short() {
        assert_eq!(human_size(2048), "2.0 KiB");
        assert_eq!(title_of("first\nsecond"), "first");
    }
}
