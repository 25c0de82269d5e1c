//! The loop over MCP: `generate` (a new run from words) and `refine` (a
//! change in words to a run), told to the client as progress notifications
//! while they go on, and stopped, as the studio's stop button stops a run,
//! when the client cancels the request.

use std::future::Future;
use std::time::Duration;

use indicatif::ProgressBar;
use rmcp::model::{CallToolResult, ProgressNotificationParam};
use rmcp::service::RequestContext;
use rmcp::RoleServer;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::interrupt::Cause;
use crate::pipeline::Watch;
use crate::report::RunSettings;
use crate::run::RunDir;

use super::{refused, Cadloop};

/// How often a run's stage is looked at for a progress notification.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

#[derive(Debug, Deserialize, JsonSchema)]
pub struct GenerateArgs {
    /// The part in words, with its dimensions, e.g. "a 40 x 20 x 10 mm
    /// block with a 6 mm hole through the middle".
    pub prompt: String,
    /// Repairs of failing code per generation or rewrite, 0 to 20 (default:
    /// the server's, 3 unless configured).
    #[serde(default)]
    pub max_repairs: Option<u32>,
    /// Rounds of critique and rewrite, 0 to 20 (default: the server's, 3
    /// unless configured); 0 takes the first script that builds.
    #[serde(default)]
    pub max_refines: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RefineArgs {
    /// The run's id, as `generate`, `build` or `runs` gave it.
    pub run: String,
    /// The change in words, e.g. "make the hole 8 mm and add a 1 mm chamfer
    /// on the top edges".
    pub change: String,
}

impl Cadloop {
    /// The settings of a run of the loop, or the refusal that says how to
    /// configure an endpoint.
    fn looped(&self) -> Result<RunSettings, CallToolResult> {
        self.looped.clone().map_err(|how| {
            refused(format!(
                "{how}\n(build, tweak, views and check need no LLM: write the code yourself and call build)"
            ))
        })
    }

    pub(super) async fn generate_run(
        &self,
        args: GenerateArgs,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let mut settings = match self.looped() {
            Ok(settings) => settings,
            Err(refusal) => return refusal,
        };
        let prompt = match crate::pipeline::request_text(&args.prompt, "prompt") {
            Ok(prompt) => prompt,
            Err(why) => return refused(format!("{why}: describe the part, with its dimensions")),
        };
        let budget = match crate::pipeline::asked_budget(
            &mut settings,
            args.max_repairs,
            args.max_refines,
        ) {
            Ok(budget) => budget,
            Err(why) => return refused(why),
        };
        let (id, dir) = match self.new_run(&prompt) {
            Ok(made) => made,
            Err(refusal) => return refusal,
        };
        let mut watch = Watch::showing(&ProgressBar::hidden());
        watch.budget = Some(budget);
        let result = follow(
            &context,
            &watch,
            self.engine.run(&prompt, &dir, settings, &watch),
        )
        .await;
        drop(dir);
        self.answer(&id, result, true)
    }

    pub(super) async fn refine_run(
        &self,
        args: RefineArgs,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let settings = match self.looped() {
            Ok(settings) => settings,
            Err(refusal) => return refusal,
        };
        let change = match crate::pipeline::request_text(&args.change, "change") {
            Ok(change) => change,
            Err(why) => return refused(format!("{why}: say what to change, in words")),
        };
        let folder = match self.run_folder(&args.run) {
            Ok(folder) => folder,
            Err(refusal) => return refusal,
        };
        let (dir, record) = match RunDir::open(&folder) {
            Ok(opened) => opened,
            Err(err) => return refused(crate::error_chain(&err)),
        };
        let from = match crate::pipeline::start_attempt(&record, None) {
            Ok(from) => from,
            Err(err) => return refused(err.explain("the run")),
        };
        let watch = Watch::showing(&ProgressBar::hidden());
        let result = follow(
            &context,
            &watch,
            self.engine
                .refine(&dir, record, &change, from, settings, &watch),
        )
        .await;
        drop(dir);
        self.answer(&args.run, result, true)
    }
}

/// Awaits `run`, telling the client each new stage of it as a progress
/// notification (when the request asked for them with a progress token),
/// and raising the run's stop when the client cancels the request: the run
/// then ends at its next wait and records that it was stopped.
async fn follow<T>(
    context: &RequestContext<RoleServer>,
    watch: &Watch,
    run: impl Future<Output = T>,
) -> T {
    let token = context.meta.get_progress_token();
    tokio::pin!(run);
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    let mut told = String::new();
    let mut step = 0u32;
    let mut stopping = false;
    loop {
        tokio::select! {
            out = &mut run => return out,
            () = context.ct.cancelled(), if !stopping => {
                stopping = true;
                tracing::info!("the MCP client cancelled the request; stopping the run");
                watch.stop.raise(Cause::Asked);
            }
            _ = tick.tick(), if token.is_some() => {
                let Some(token) = &token else { continue };
                let stage = watch.progress.message();
                if stage.is_empty() || stage == told {
                    continue;
                }
                step += 1;
                let note = ProgressNotificationParam::new(token.clone(), f64::from(step)).with_message(stage.clone());
                if let Err(err) = context.peer.notify_progress(note).await {
                    tracing::debug!("a progress notification was not sent: {err}");
                }
                told = stage;
            }
        }
    }
}
