//! The engine: what every run needs (the LLM client, the prompts, the
//! FreeCAD pool, the captioner, the font), started once from checked
//! settings and shared by the runs that use it; and the settings a run
//! records.

use std::sync::Arc;

use crate::caption::{CaptionService, CaptionSettings};
use crate::config::Budget;
use crate::executor::{ExecutorError, ExecutorSettings, Pool};
use crate::interrupt::Interrupt;
use crate::llm::{LlmClient, LlmError, LlmSettings, Recording};
use crate::prompts::Prompts;
use crate::render::{self, RenderError, RenderSettings};
use crate::report::{LlmRecord, RunSettings};

/// What an [`Engine`] is built from: checked settings, nothing started yet.
pub struct EngineSettings {
    /// `None`: an engine for tweaks, which never ask the LLM.
    pub llm: Option<LlmSettings>,
    pub recording: Recording,
    pub budget: Budget,
    pub prompts: Prompts,
    pub executor: ExecutorSettings,
    pub render: RenderSettings,
    /// `None`: the critique sees the geometry facts only.
    pub captioner: Option<CaptionSettings>,
    /// Whether the LLM writes checks with each request's first script and
    /// every attempt runs them (`--checks`).
    pub checks: bool,
}

impl EngineSettings {
    /// The settings a run records (secrets left out), with the captioner as
    /// loaded.
    fn record(&self, captioner: Option<&CaptionService>) -> RunSettings {
        let executor = &self.executor;
        RunSettings {
            llm: self.llm.as_ref().map(|llm| LlmRecord {
                base_url: llm.endpoint().to_string(),
                model: llm.model.clone(),
                temperature: llm.temperature,
                max_tokens: llm.max_tokens,
                request_timeout_secs: llm.request_timeout.as_secs_f64(),
                retries: llm.retries,
                stream: llm.stream,
                constrain: Some(llm.constrain),
            }),
            max_repairs: self.budget.max_repairs,
            max_refines: self.budget.max_refines,
            captioner: captioner.as_ref().map(|c| c.dir().display().to_string()),
            caption_beams: captioner.as_ref().map(|c| c.decoding().beams),
            view_size: self.render.size,
            exec_timeout_secs: executor.timeout.as_secs_f64(),
            memory_limit_mib: executor.memory_limit_mib,
            prompts: self.prompts.origins().to_vec(),
            checks: self.checks,
        }
    }
}

/// Everything a run needs, built once by [`Engine::start`] and shared by the
/// runs that use it (one for generate and refine, many for batch and bench).
pub struct Engine {
    pub(super) llm: Option<LlmClient>,
    pub(super) prompts: Prompts,
    pub(super) pool: Arc<Pool>,
    /// The captioner, shared by runs (one caption job at a time).
    pub(super) captioner: Option<CaptionService>,
    pub(super) render: RenderSettings,
    pub(super) font: Arc<ab_glyph::FontVec>,
    pub(super) budget: Budget,
    /// Whether requests get checks ([`EngineSettings::checks`]).
    pub(super) checks: bool,
    /// Modules the system prompt tells the LLM it may import.
    pub(super) allowed_modules: Vec<String>,
    /// One render at a time, first come first served. A render already uses
    /// every core; renders run side by side would share the cores and all
    /// finish late together, keeping concurrent runs in lockstep.
    pub(super) render_gate: tokio::sync::Semaphore,
    /// Raised to stop every run at its next wait (an LLM call, a FreeCAD job,
    /// a render); each records what it did and why it stopped.
    pub(super) interrupt: Interrupt,
}

/// The engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Font(#[from] RenderError),
    #[error(transparent)]
    Llm(#[from] LlmError),
    #[error(transparent)]
    Caption(#[from] crate::caption::CaptionError),
    #[error(transparent)]
    Executor(#[from] ExecutorError),
}

impl Engine {
    /// Loads the font and the captioner, starts the FreeCAD pool and the LLM
    /// client; runs stop when `interrupt` is raised. Also gives the settings
    /// a run records.
    pub async fn start(
        settings: EngineSettings,
        interrupt: Interrupt,
    ) -> Result<(Engine, RunSettings), StartError> {
        let font = render::load_font()?;
        let llm = match &settings.llm {
            Some(llm) => Some(LlmClient::new(llm.clone(), &settings.recording)?),
            None => None,
        };
        let captioner = match settings.captioner.clone() {
            Some(captioner) => Some(CaptionService::start(captioner).await?),
            None => {
                tracing::info!("no captioner model (--captioner): the critique will see the geometry facts only");
                None
            }
        };
        let pool = Arc::new(Pool::start(settings.executor.clone()).await?);
        let record = settings.record(captioner.as_ref());
        let executor = &settings.executor;
        let engine = Engine {
            llm,
            prompts: settings.prompts,
            pool,
            captioner,
            render: settings.render,
            font: Arc::new(font),
            budget: settings.budget,
            checks: settings.checks,
            allowed_modules: executor.allowed_imports.clone(),
            render_gate: tokio::sync::Semaphore::new(1),
            interrupt,
        };
        Ok((engine, record))
    }

    /// Stops the FreeCAD workers; the captioner's thread ends with the engine.
    pub async fn shutdown(&self) {
        self.pool.shutdown().await;
    }

    /// Runs `code` again in a scratch folder `dir` with `checks`, changing
    /// no run: the checks' results on the shape it builds (the report says
    /// why there are none when it builds no solid).
    pub async fn check(
        &self,
        code: String,
        checks: Vec<crate::checks::CheckCall>,
        dir: &std::path::Path,
    ) -> Result<crate::executor::ExecReport, ExecutorError> {
        let output = self
            .pool
            .run(crate::executor::Job {
                code,
                dir: dir.to_path_buf(),
                timeout: None,
                inputs: Vec::new(),
                checks,
            })
            .await?;
        Ok(output.report)
    }

    /// What an agent reads before it writes code for this engine's workers
    /// (`cadloop mcp`'s guide): the system prompt's rules, cheat sheet,
    /// check library and examples, told for the tools.
    pub fn guide(&self) -> Result<String, crate::prompts::PromptError> {
        self.prompts.system(&crate::prompts::SystemContext {
            allowed_modules: self.allowed_modules.clone(),
            checks: true,
            agent: true,
        })
    }

    /// The stop request every run of this engine waits on.
    pub fn interrupt(&self) -> &Interrupt {
        &self.interrupt
    }
}
