//! `cadloop mcp`: cadloop's sandboxed FreeCAD, views and parameters as
//! Model Context Protocol tools, for agent hosts whose own model writes the
//! code. One [`Engine`] (its warm worker pool) serves every call; each
//! build is a run folder under the runs folder, as the studio makes them,
//! which later calls name by its id.
//!
//! Tools: `build` (code run in the sandbox, made a run), `tweak` (new
//! values for a run's named parameters), `views` (its views as PNG images),
//! `check` (requirement checks on a run's result), `runs` (the runs
//! folder's runs).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use indicatif::ProgressBar;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{tool, tool_handler, tool_router, ErrorData, ServerHandler};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::executor::Outcome;
use crate::pipeline::{Engine, RunResult, Tweak, Watch};
use crate::render::View;
use crate::report::{read_run, AttemptRecord, RunRecord, RunSettings};
use crate::run::RunDir;
use crate::studio::guard;

/// The server: the engine, where runs go, and what they record.
#[derive(Clone)]
pub struct Cadloop {
    engine: Arc<Engine>,
    runs: PathBuf,
    settings: RunSettings,
    tool_router: ToolRouter<Cadloop>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct BuildArgs {
    /// FreeCAD Python (FreeCAD 0.20, `import FreeCAD as App, Part`) that
    /// assigns the finished solid to `result`. Give every dimension its own
    /// UPPER_SNAKE constant after the imports (`WIDTH = 40  # mm`): those
    /// become the run's parameters, which `tweak` changes.
    pub code: String,
    /// What the part is, in a few words: the run's title and folder name.
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct TweakArgs {
    /// The run's id, as `build` or `runs` gave it.
    pub run: String,
    /// New values of the run's parameters: NAME → number.
    pub values: HashMap<String, Value>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct CheckArgs {
    /// The run's id, as `build` or `runs` gave it.
    pub run: String,
    /// Requirement checks as a list of calls of the check library (bbox,
    /// position, volume, area, solids, valid, faces, holes, axis_distance,
    /// wall, symmetric), e.g. `CHECKS = [bbox(40, 20, 10), holes(6,
    /// count=1, through=True), volume(7717, rel=0.01)]`.
    pub checks: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ViewsArgs {
    /// The run's id, as `build` or `runs` gave it.
    pub run: String,
    /// Which views: front, back, left, right, top, bottom, iso; all seven when left out.
    #[serde(default)]
    pub names: Option<Vec<String>>,
}

/// A call that cannot be served as asked: a tool error the agent reads.
fn refused(message: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message.into())])
}

#[tool_router(router = tool_router)]
impl Cadloop {
    /// A server over `runs` (created if missing), running on `engine`.
    pub fn new(
        engine: Arc<Engine>,
        runs: &Path,
        settings: RunSettings,
    ) -> std::io::Result<Cadloop> {
        std::fs::create_dir_all(runs)?;
        Ok(Cadloop {
            engine,
            runs: runs.canonicalize()?,
            settings: RunSettings {
                llm: None,
                ..settings
            },
            tool_router: Cadloop::tool_router(),
        })
    }

    #[tool(
        description = "Run FreeCAD Python in cadloop's sandbox and make it a run: returns the \
                       run id, the solid's geometry facts (volume, area, bounding box, solids, \
                       faces by type, validity), its named parameters and a contact sheet of \
                       seven views; a script that fails names the line and the error."
    )]
    async fn build(
        &self,
        Parameters(args): Parameters<BuildArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        if args.code.trim().is_empty() {
            return Ok(refused(
                "the code is empty: give FreeCAD Python that assigns the solid to `result`",
            ));
        }
        let description = args
            .description
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .unwrap_or("a part built over MCP")
            .to_string();
        let folder = crate::run::free_folder(&self.runs, &crate::run::slug(&description));
        let id = folder
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let dir = match RunDir::create(&folder) {
            Ok(dir) => dir,
            Err(err) => return Ok(refused(crate::error_chain(&err))),
        };
        let watch = Watch::showing(&ProgressBar::hidden());
        let result = self
            .engine
            .run_given(&description, args.code, &dir, self.settings.clone(), &watch)
            .await;
        Ok(self.answer(&id, result))
    }

    #[tool(
        description = "Give a run's named parameters new values (NAME → number) and rebuild it \
                       without changing anything else; returns the same as build."
    )]
    async fn tweak(
        &self,
        Parameters(args): Parameters<TweakArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let folder = match self.run_folder(&args.run) {
            Ok(folder) => folder,
            Err(refusal) => return Ok(refusal),
        };
        let (dir, record) = match RunDir::open(&folder) {
            Ok(opened) => opened,
            Err(err) => return Ok(refused(crate::error_chain(&err))),
        };
        let tweak = crate::pipeline::start_attempt(&record, None)
            .map_err(|e| e.explain("the run"))
            .and_then(|from| {
                let values =
                    crate::pipeline::assignments(&args.values).map_err(|e| e.to_string())?;
                Tweak::new(&record, from, &values).map_err(|e| e.to_string())
            });
        let tweak = match tweak {
            Ok(tweak) => tweak,
            Err(message) => return Ok(refused(message)),
        };
        let watch = Watch::showing(&ProgressBar::hidden());
        let result = self
            .engine
            .tweak(&dir, record, tweak, self.settings.clone(), &watch)
            .await;
        Ok(self.answer(&args.run, result))
    }

    #[tool(
        description = "A run's views of its result as PNG images: front, back, left, right, top, bottom and iso, or those named."
    )]
    async fn views(
        &self,
        Parameters(args): Parameters<ViewsArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let (folder, chosen) = match self.result_of(&args.run) {
            Ok(found) => found,
            Err(refusal) => return Ok(refusal),
        };
        let names: Vec<String> = args
            .names
            .unwrap_or_else(|| View::ALL.iter().map(|v| v.name().to_string()).collect());
        if let Some(unknown) = names
            .iter()
            .find(|n| !View::ALL.iter().any(|v| v.name() == n.as_str()))
        {
            return Ok(refused(format!(
                "there is no view {unknown:?}; the views are {}",
                View::ALL.map(View::name).join(", ")
            )));
        }
        let mut content = Vec::new();
        for name in &names {
            let file = folder
                .join(&chosen.dir)
                .join(crate::render::VIEWS_DIR)
                .join(format!("{name}.png"));
            match tokio::fs::read(&file).await {
                Ok(png) => {
                    content.push(ContentBlock::text(format!(
                        "{name} view of attempt {}",
                        chosen.number
                    )));
                    content.push(png_block(&png));
                }
                Err(err) => return Ok(refused(format!("cannot read the {name} view: {err}"))),
            }
        }
        Ok(CallToolResult::success(content))
    }

    #[tool(
        description = "Run requirement checks (`CHECKS = [bbox(40, 20, 10), holes(6, count=1, \
                       through=True), ...]`) on a run's result without changing the run; \
                       returns each check's status, what was measured and what was expected."
    )]
    async fn check(
        &self,
        Parameters(args): Parameters<CheckArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let checks = match crate::checks::Checks::parse(&args.checks) {
            Ok(checks) => checks,
            Err(err) => return Ok(refused(err.to_string())),
        };
        let chosen = match self.result_of(&args.run) {
            Ok((_, chosen)) => chosen,
            Err(refusal) => return Ok(refusal),
        };
        let scratch = match tempfile::tempdir() {
            Ok(dir) => dir,
            Err(err) => return Ok(refused(format!("cannot make a scratch folder: {err}"))),
        };
        let report = match self
            .engine
            .check(
                chosen.code.clone(),
                checks.calls,
                &scratch.path().join("job"),
            )
            .await
        {
            Ok(report) => report,
            Err(err) => return Ok(refused(crate::error_chain(&err))),
        };
        if let Outcome::Error { kind, message, .. } = &report.outcome {
            return Ok(refused(format!(
                "the run's code did not build again for the checks ({kind}): {message}"
            )));
        }
        let tally = crate::checks::Tally::of(&report.checks);
        let mut lines = vec![format!(
            "{tally} on attempt {} of run {}",
            chosen.number, args.run
        )];
        lines.extend(
            report
                .checks
                .iter()
                .map(|c| format!("{}: {}", c.call, c.message)),
        );
        let mut answer = CallToolResult::success(vec![ContentBlock::text(lines.join("\n"))]);
        answer.structured_content = Some(json!({
            "run": args.run,
            "attempt": chosen.number,
            "passed": tally.passed,
            "total": tally.total,
            "checks": report.checks,
        }));
        Ok(answer)
    }

    #[tool(
        description = "The runs in the runs folder: id, what the part is, outcome, and when each was last changed."
    )]
    async fn runs(&self) -> Result<CallToolResult, ErrorData> {
        // The runs as the studio lists them: the same ids, newest first.
        let listed: Vec<Value> = crate::studio::list_runs(&self.runs)
            .into_iter()
            .map(|row| {
                let changed = std::time::UNIX_EPOCH + std::time::Duration::from_secs(row.modified);
                json!({
                    "run": row.id,
                    "prompt": row.title,
                    "outcome": row.outcome,
                    "attempts": row.attempts,
                    "changed": httpdate::fmt_http_date(changed),
                })
            })
            .collect();
        let text = if listed.is_empty() {
            "no runs yet".to_string()
        } else {
            listed
                .iter()
                .map(|r| {
                    format!(
                        "{}: {} ({})",
                        r["run"].as_str().unwrap_or(""),
                        r["prompt"].as_str().unwrap_or(""),
                        r["outcome"].as_str().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
        result.structured_content = Some(json!({ "runs": listed }));
        Ok(result)
    }
}

impl Cadloop {
    /// The folder of run `id`, or the refusal to give the agent.
    fn run_folder(&self, id: &str) -> Result<PathBuf, CallToolResult> {
        if !guard::valid_id(id) {
            return Err(refused(format!(
                "{id:?} is not a run id; `runs` lists them"
            )));
        }
        guard::inside(&self.runs, &guard::id_path(id))
            .filter(|p| p.join(crate::report::RUN_FILE).is_file())
            .ok_or_else(|| refused(format!("there is no run {id}; `runs` lists them")))
    }

    /// The folder of run `id` and the attempt that is its result, or the
    /// refusal to give the agent.
    fn result_of(&self, id: &str) -> Result<(PathBuf, AttemptRecord), CallToolResult> {
        let folder = self.run_folder(id)?;
        let record = read_run(&folder).map_err(|err| refused(crate::error_chain(&err)))?;
        let chosen = record
            .chosen_attempt()
            .cloned()
            .ok_or_else(|| refused(format!("run {id} has no result: build or tweak it first")))?;
        Ok((folder, chosen))
    }

    /// A build's or a tweak's answer: the facts and parameters of the
    /// result as structured content, a summary, and the contact sheet; a
    /// tool error naming the line when the code built no solid.
    fn answer(
        &self,
        id: &str,
        result: Result<RunResult, crate::pipeline::PipelineError>,
    ) -> CallToolResult {
        let record = match result {
            Ok(result) => result.record,
            Err(err) => return refused(crate::error_chain(&err)),
        };
        let structured = summary(id, &record);
        let mut content = vec![ContentBlock::text(describe(&structured))];
        if let Some(chosen) = record.chosen_attempt() {
            let sheet = self
                .runs
                .join(id)
                .join(&chosen.dir)
                .join(crate::render::SHEET_FILE);
            if let Ok(png) = std::fs::read(sheet) {
                content.push(png_block(&png));
            }
        }
        let mut answer = if record.chosen_attempt().is_some() {
            CallToolResult::success(content)
        } else {
            CallToolResult::error(content)
        };
        answer.structured_content = Some(structured);
        answer
    }
}

fn png_block(png: &[u8]) -> ContentBlock {
    ContentBlock::image(
        base64::engine::general_purpose::STANDARD.encode(png),
        "image/png",
    )
}

/// A run's latest result as a tool gives it.
fn summary(id: &str, record: &RunRecord) -> Value {
    let mut out = json!({ "run": id, "outcome": record.outcome });
    let Some(attempt) = record.chosen_attempt().or(record.attempts.last()) else {
        out["error"] = json!({ "message": crate::pipeline::why_no_result(record) });
        return out;
    };
    out["attempt"] = json!(attempt.number);
    if let Some(facts) = attempt.result.facts().filter(|_| attempt.executed()) {
        out["facts"] = json!({
            "volume": facts.volume,
            "area": facts.area,
            "size": facts.bbox.size,
            "min": facts.bbox.min,
            "max": facts.bbox.max,
            "solids": facts.solids,
            "faces": facts.faces,
            "face_types": facts.face_types,
            "valid": facts.valid,
        });
    }
    out["parameters"] = attempt
        .result
        .parameters
        .iter()
        .map(|p| json!({ "name": p.name, "value": p.value, "kind": p.kind, "comment": p.comment }))
        .collect();
    out["changes"] = attempt.changes.iter().map(ToString::to_string).collect();
    if let Outcome::Error {
        kind,
        message,
        line,
        ..
    } = &attempt.result.outcome
    {
        out["error"] = json!({
            "kind": kind.to_string(),
            "line": line,
            "message": message,
            "diagnosis": attempt.result.diagnosis.iter().map(crate::executor::Defect::with_fix).collect::<Vec<_>>(),
        });
    }
    out
}

/// The summary in a few lines of text, for hosts that show only text.
fn describe(summary: &Value) -> String {
    let mut lines = vec![format!(
        "run {} · {}",
        summary["run"].as_str().unwrap_or(""),
        summary["outcome"].as_str().unwrap_or("")
    )];
    if let Some(facts) = summary.get("facts") {
        lines.push(format!(
            "size {} mm, volume {:.1} mm³, {} solid(s), {} faces, {}",
            facts["size"]
                .as_array()
                .map(|s| s
                    .iter()
                    .map(|v| format!("{:.2}", v.as_f64().unwrap_or(0.0)))
                    .collect::<Vec<_>>()
                    .join(" × "))
                .unwrap_or_default(),
            facts["volume"].as_f64().unwrap_or(0.0),
            facts["solids"],
            facts["faces"],
            if facts["valid"] == true {
                "valid"
            } else {
                "not valid"
            }
        ));
    }
    if let Some(error) = summary.get("error") {
        let at = error["line"]
            .as_u64()
            .map(|l| format!(" at line {l}"))
            .unwrap_or_default();
        lines.push(format!(
            "failed: {}{at}: {}",
            error["kind"].as_str().unwrap_or("error"),
            error["message"].as_str().unwrap_or("")
        ));
    }
    if let Some(parameters) = summary["parameters"].as_array().filter(|p| !p.is_empty()) {
        let named: Vec<String> = parameters
            .iter()
            .map(|p| format!("{} = {}", p["name"].as_str().unwrap_or(""), p["value"]))
            .collect();
        lines.push(format!("parameters: {}", named.join(", ")));
    }
    lines.join("\n")
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Cadloop {
    fn get_info(&self) -> ServerConfig {
        let mut info = ServerConfig::new(ServerCapabilities::builder().enable_tools().build());
        info.server_info = Implementation::new("cadloop", env!("CARGO_PKG_VERSION"));
        info.instructions = Some(
            "cadloop runs FreeCAD Python (FreeCAD 0.20) headless in a sandbox. Write a script \
             that assigns the finished solid to `result`, with each dimension as an UPPER_SNAKE \
             constant after the imports; call build, look at the facts and the views, then \
             tweak the parameters or build again."
                .into(),
        );
        info
    }
}
