//! The loop's settings for generate, refine, batch and bench: checked from
//! the flags and `cadloop.toml`, then started as an [`Engine`].

use std::path::PathBuf;
use std::sync::Arc;

use crate::caption::{self, CaptionService};
use crate::cli::{GlobalArgs, LimitArgs, LlmArgs, LoopArgs, RunFlags};
use crate::config::{self, Budget, ExecutorFlags, FileConfig, LlmFlags};
use crate::executor::{ExecutorSettings, Pool};
use crate::interrupt::{Cause, Interrupt};
use crate::llm::{LlmClient, LlmSettings, Recording};
use crate::pipeline::Engine;
use crate::prompts::Prompts;
use crate::render::{self, RenderSettings};
use crate::report::{LlmRecord, RunSettings};

/// The loop's settings, checked; nothing started yet.
pub(super) struct LoopConfig {
    llm: LlmSettings,
    recording: Recording,
    budget: Budget,
    prompts: Prompts,
    executor: ExecutorSettings,
    render: RenderSettings,
    decoding: caption::Decoding,
    captioner_dir: Option<PathBuf>,
    captioner_threads: usize,
}

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
        Ok(LoopConfig {
            llm,
            recording,
            budget,
            prompts,
            executor: config::executor_settings(&file.executor, &executor)?,
            render: config::render_settings(&file.render, None)?,
            decoding: config::decoding(&file.captioner, None, None, None, None)?,
            captioner_dir: config::captioner_dir(loop_args.captioner.as_deref(), &file.captioner),
            captioner_threads: file
                .captioner
                .threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
        })
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
                engine.pool.shutdown().await;
                Ok(Err(cause))
            }
        }
    }

    /// Loads the captioner, starts the FreeCAD pool and builds the engine,
    /// whose runs stop when `interrupt` is raised.
    pub(super) async fn start(self, interrupt: Interrupt) -> anyhow::Result<(Engine, RunSettings)> {
        let font = render::load_font()?;
        let llm = LlmClient::new(self.llm.clone(), &self.recording)?;
        let captioner = match self.captioner_dir {
            Some(dir) => Some(
                CaptionService::start(dir, self.captioner_threads, self.decoding.clone()).await?,
            ),
            None => {
                tracing::info!("no captioner model (--captioner): the critique will see the geometry facts only");
                None
            }
        };
        let pool = Arc::new(Pool::start(self.executor.clone()).await?);
        let settings = RunSettings {
            llm: LlmRecord {
                base_url: self.llm.endpoint().to_string(),
                model: self.llm.model.clone(),
                temperature: self.llm.temperature,
                max_tokens: self.llm.max_tokens,
                request_timeout_secs: self.llm.request_timeout.as_secs_f64(),
                retries: self.llm.retries,
            },
            max_repairs: self.budget.max_repairs,
            max_refines: self.budget.max_refines,
            captioner: captioner.as_ref().map(|c| c.dir().display().to_string()),
            caption_beams: captioner.as_ref().map(|c| c.decoding().beams),
            view_size: self.render.size,
            exec_timeout_secs: self.executor.timeout.as_secs_f64(),
            memory_limit_mib: self.executor.memory_limit_mib,
            prompts: self.prompts.origins().to_vec(),
        };
        let engine = Engine {
            llm,
            prompts: self.prompts,
            pool,
            captioner,
            render: self.render,
            font: Arc::new(font),
            budget: self.budget,
            allowed_modules: self.executor.allowed_imports.clone(),
            render_gate: tokio::sync::Semaphore::new(1),
            interrupt,
        };
        Ok((engine, settings))
    }
}
