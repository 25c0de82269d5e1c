//! The loop's settings for generate, refine, batch and bench: checked from
//! the flags and `cadloop.toml`, then started as an [`Engine`].

use crate::cli::{GlobalArgs, LimitArgs, LlmArgs, LoopArgs, RunFlags};
use crate::config::{self, ExecutorFlags, FileConfig, LlmFlags};
use crate::interrupt::{Cause, Interrupt};
use crate::llm::Recording;
use crate::pipeline::{Engine, EngineSettings};
use crate::prompts::Prompts;
use crate::report::RunSettings;

/// The loop's settings, checked; nothing started yet.
pub(super) struct LoopConfig(EngineSettings);

impl LoopConfig {
    /// The settings of a single run (generate, refine): one FreeCAD worker.
    pub(super) fn for_one_run(global: &GlobalArgs, flags: &RunFlags) -> anyhow::Result<LoopConfig> {
        let (file, _) = config::load_file(global.config.as_deref())?;
        LoopConfig::check(&file, &flags.llm, &flags.budget, &flags.limits, Some(1))
    }

    /// `workers`: the FreeCAD pool's size (`None`: the configured one).
    pub(super) fn check(
        file: &FileConfig,
        llm: &LlmArgs,
        loop_args: &LoopArgs,
        limits: &LimitArgs,
        workers: Option<usize>,
    ) -> anyhow::Result<LoopConfig> {
        let executor = ExecutorFlags {
            workers,
            timeout_secs: limits.timeout,
            memory_limit_mib: limits.memory_limit,
        };
        let recording = Recording {
            record: llm.record.clone(),
            replay: llm.replay.clone(),
        };
        let flags = LlmFlags {
            base_url: llm.base_url.clone(),
            model: llm.model.clone(),
            temperature: llm.temperature,
            max_tokens: llm.max_tokens,
            timeout_secs: llm.request_timeout,
            retries: llm.retries,
        };
        let llm = match &llm.replay {
            Some(recording) => config::replay_settings(recording),
            None => config::llm_settings(&file.llm, &flags, config::api_key_from_env())?,
        };
        let budget = config::budget(&file.generate, loop_args.max_repairs, loop_args.max_refines)?;
        let prompts = match loop_args
            .prompts
            .as_ref()
            .or(file.generate.prompts.as_ref())
        {
            Some(dir) => Prompts::load(dir)?,
            None => Prompts::builtin(),
        };
        let captioner_threads = file
            .captioner
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        // Checked even without a model, so a bad [captioner] section is found at once.
        let decoding = config::decoding(&file.captioner, None, None, None, None)?;
        let captioner = config::captioner_dir(loop_args.captioner.as_deref(), &file.captioner)
            .map(|dir| (dir, captioner_threads, decoding));
        Ok(LoopConfig(EngineSettings {
            llm,
            recording,
            budget,
            prompts,
            executor: config::executor_settings(&file.executor, &executor)?,
            render: config::render_settings(&file.render, None)?,
            captioner,
        }))
    }

    /// [`LoopConfig::start`] for one run (generate, refine), which Ctrl-C or
    /// SIGTERM stop. `Err(cause)` inside: a signal came while it started
    /// (the pool is shut down again).
    pub(super) async fn start_one_run(
        self,
    ) -> anyhow::Result<Result<(Engine, RunSettings), Cause>> {
        let interrupt = Interrupt::on_signals()?;
        let (engine, settings) = self.start(interrupt.clone()).await?;
        match interrupt.raised() {
            None => Ok(Ok((engine, settings))),
            Some(cause) => {
                engine.shutdown().await;
                Ok(Err(cause))
            }
        }
    }

    /// Starts the engine, whose runs stop when `interrupt` is raised.
    pub(super) async fn start(self, interrupt: Interrupt) -> anyhow::Result<(Engine, RunSettings)> {
        Ok(Engine::start(self.0, interrupt).await?)
    }
}
