//! `cadloop mcp`: cadloop's sandboxed FreeCAD, views and parameters as
//! Model Context Protocol tools, for agent hosts whose own model writes the
//! code. One [`Engine`] (its warm worker pool) serves every call; each
//! build is a run folder under the runs folder, as the studio makes them,
//! which later calls name by its id.
//!
//! Tools: `build` (code run in the sandbox, made a run), `tweak` (new
//! values for a run's named parameters), `views` (its views as PNG images),
//! `check` (requirement checks on a run's result), `generate` and `refine`
//! (the loop, when an LLM endpoint is configured), `runs` (the runs
//! folder's runs). Resources: each run's files, and a guide to writing
//! code for cadloop (resources.rs).

mod answer;
mod live;
mod resources;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indicatif::ProgressBar;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResult, ContentBlock, Implementation, ListResourceTemplatesResult, ListResourcesResult,
    PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities,
    ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{tool, tool_handler, tool_router, ErrorData, RoleServer, ServerHandler};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::executor::Outcome;
use crate::pipeline::{Engine, RunResult, Tweak, Watch};
use crate::render::View;
use crate::report::{read_run, AttemptRecord, RunSettings};
use crate::run::RunDir;
use crate::studio::guard;

use answer::{describe, png_block, summary};

/// The server: the engine, where runs go, and what they record.
#[derive(Clone)]
pub struct Cadloop {
    engine: Arc<Engine>,
    runs: PathBuf,
    /// What runs of given code record: no LLM.
    given: RunSettings,
    /// What runs of the loop record, or why there are none (how to
    /// configure an endpoint).
    looped: Result<RunSettings, String>,
    tool_router: ToolRouter<Cadloop>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct BuildArgs {
    /// FreeCAD Python (FreeCAD 0.20, `import FreeCAD as App, Part`) that
    /// assigns the finished solid to `result`. Give every dimension its own
    /// UPPER_SNAKE constant after the imports (`WIDTH = 40  # mm`): those
    /// become the run's parameters, which `tweak` changes.
    pub code: String,
    /// The part's requirements as checks run on the solid, in the form of
    /// the `check` tool's `checks` (the guide resource lists them), e.g.
    /// `CHECKS = [bbox(40, 20, 10), holes(6, count=1, through=True)]`.
    #[serde(default)]
    pub checks: Option<String>,
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
    /// A server over `runs` (created if missing), running on `engine`;
    /// `no_llm`: why generate and refine cannot run (the engine has no LLM).
    pub fn new(
        engine: Arc<Engine>,
        runs: &Path,
        settings: RunSettings,
        no_llm: Option<String>,
    ) -> std::io::Result<Cadloop> {
        std::fs::create_dir_all(runs)?;
        Ok(Cadloop {
            engine,
            runs: runs.canonicalize()?,
            given: RunSettings {
                llm: None,
                ..settings.clone()
            },
            looped: match no_llm {
                Some(how) => Err(how),
                None => Ok(settings),
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
        let checks = match args.checks.as_deref().map(crate::checks::Checks::parse) {
            Some(Ok(checks)) => Some(checks),
            Some(Err(err)) => return Ok(refused(format!("the checks: {err}"))),
            None => None,
        };
        let (id, dir) = match self.new_run(&description) {
            Ok(made) => made,
            Err(refusal) => return Ok(refusal),
        };
        let watch = Watch::showing(&ProgressBar::hidden());
        let result = self
            .engine
            .run_given(
                &description,
                args.code,
                checks,
                &dir,
                self.given.clone(),
                &watch,
            )
            .await;
        Ok(self.answer(&id, result, false))
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
            .tweak(&dir, record, tweak, self.given.clone(), &watch)
            .await;
        Ok(self.answer(&args.run, result, false))
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
        description = "Make a part from words with cadloop's own loop: its LLM writes the \
                       checks and the FreeCAD code, repairs failures and critiques the views \
                       until the part matches and passes its checks or the budget is spent. \
                       Needs an LLM endpoint configured for cadloop (else an error saying how). \
                       Sends progress notifications; cancelling the request stops the run. \
                       Returns what build returns, with the code."
    )]
    async fn generate(
        &self,
        Parameters(args): Parameters<live::GenerateArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        Ok(self.generate_run(args, context).await)
    }

    #[tool(
        description = "Change a run in words (\"make the hole 8 mm\") with cadloop's loop, from \
                       its result; needs an LLM endpoint like generate, sends progress and stops \
                       when cancelled. Returns what build returns, with the code."
    )]
    async fn refine(
        &self,
        Parameters(args): Parameters<live::RefineArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        Ok(self.refine_run(args, context).await)
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

    /// A new run folder named after `description`, created and locked, with its id.
    fn new_run(&self, description: &str) -> Result<(String, RunDir), CallToolResult> {
        let folder = crate::run::free_folder(&self.runs, &crate::run::slug(description));
        let id = folder
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let dir = RunDir::create(&folder).map_err(|err| refused(crate::error_chain(&err)))?;
        Ok((id, dir))
    }

    /// A run's answer: the facts, parameters and checks of its result as
    /// structured content (`code`: with its script), a summary, and the
    /// contact sheet; a tool error naming the line when no solid was built.
    fn answer(
        &self,
        id: &str,
        result: Result<RunResult, crate::pipeline::PipelineError>,
        code: bool,
    ) -> CallToolResult {
        let record = match result {
            Ok(result) => result.record,
            Err(err) => return refused(crate::error_chain(&err)),
        };
        let structured = summary(id, &record, code);
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

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Cadloop {
    fn get_info(&self) -> ServerConfig {
        let mut info = ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        );
        info.server_info = Implementation::new("cadloop", env!("CARGO_PKG_VERSION"));
        info.instructions = Some(format!(
            "cadloop runs FreeCAD Python (FreeCAD 0.20) headless in a sandbox. Read the \
             resource {} first. Write a script that assigns the finished solid to `result`, \
             with each dimension as an UPPER_SNAKE constant after the imports; call build with \
             it and the request's checks, look at the facts, the checks and the views, then \
             tweak the parameters or build again.",
            resources::GUIDE_URI
        ));
        info
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        self.list_resources_now(request.as_ref().and_then(|r| r.cursor.as_deref()))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(Cadloop::resource_templates())
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        self.read_resource_now(&request.uri).await.map(Into::into)
    }
}
