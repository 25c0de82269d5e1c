//! The settings of each command family, resolved once: flags (clap has
//! already read their environment variables) over `cadloop.toml` over the
//! defaults. [`Settings::read`] reads the file once; its methods build one
//! checked settings value per family:
//!
//! - [`ExecSettings`] (exec, render, bench scoring, doctor): the FreeCAD
//!   workers and the views;
//! - [`CaptionSettings`] (caption, the loop, doctor): the captioner model;
//! - [`LoopSettings`] (generate, refine, batch, bench): everything
//!   [`Engine::start`] needs;
//! - [`BenchSettings`] (bench): the metrics and the scoring's executor.
//!
//! Nothing is started here; a bad value fails before any work.

use std::path::Path;

use anyhow::bail;

use crate::caption::CaptionSettings;
use crate::cli::{
    AlignArg, CaptionArgs, EndpointArgs, GlobalArgs, LimitArgs, LlmArgs, LoopArgs, MetricArgs,
    OnOff, ProtocolArg, RunFlags, SamplingArg,
};
use crate::config::{self, ExecutorFlags, FileConfig, LlmFlags};
use crate::executor::ExecutorSettings;
use crate::interrupt::{Cause, Interrupt};
use crate::llm::{LlmSettings, Recording};
use crate::metrics::{Align, MetricSettings, Protocol, Sampling};
use crate::pipeline::{Engine, EngineSettings};
use crate::prompts::Prompts;
use crate::render::RenderSettings;
use crate::report::RunSettings;

/// The settings file, read once per command.
pub struct Settings {
    file: FileConfig,
}

/// FreeCAD workers and views.
pub struct ExecSettings {
    pub executor: ExecutorSettings,
    pub render: RenderSettings,
}

/// The loop's settings, checked; nothing started yet.
pub struct LoopSettings(EngineSettings);

/// How bench measures, and the worker that meshes STEP and FCStd models for it.
pub struct BenchSettings {
    pub metrics: MetricSettings,
    pub scoring: ExecSettings,
}

impl Settings {
    /// Reads `--config FILE` (or `CADLOOP_CONFIG`), else `./cadloop.toml` when present.
    pub fn read(global: &GlobalArgs) -> anyhow::Result<Settings> {
        let (file, _) = config::load_file(global.config.as_deref())?;
        Ok(Settings { file })
    }

    /// No file: the defaults (doctor goes on with them past a broken file).
    pub fn defaults() -> Settings {
        Settings {
            file: FileConfig::default(),
        }
    }

    /// The executor and view settings; `workers`: the pool's size (`None`: the configured one).
    pub fn exec(
        &self,
        limits: &LimitArgs,
        size: Option<u32>,
        workers: Option<usize>,
    ) -> anyhow::Result<ExecSettings> {
        let flags = ExecutorFlags {
            workers,
            timeout_secs: limits.timeout,
            memory_limit_mib: limits.memory_limit,
        };
        Ok(ExecSettings {
            executor: config::executor_settings(&self.file.executor, &flags)?,
            render: config::render_settings(&self.file.render, size)?,
        })
    }

    /// The captioner: `None` when no model folder is named anywhere. The
    /// decoding is checked even then, so a bad `[captioner]` section is
    /// found at once.
    pub fn caption(
        &self,
        model: Option<&Path>,
        args: Option<&CaptionArgs>,
    ) -> anyhow::Result<Option<CaptionSettings>> {
        let file = &self.file.captioner;
        let decoding = config::decoding(
            file,
            args.and_then(|a| a.beams),
            args.and_then(|a| a.max_length),
            args.and_then(|a| a.repetition_penalty),
            args.and_then(|a| a.prefix.clone()),
        )?;
        let threads = match file.threads {
            Some(0) => bail!("captioner.threads: use at least 1"),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(2, |n| n.get()),
        };
        Ok(
            config::captioner_dir(model, file).map(|model| CaptionSettings {
                model,
                threads,
                decoding,
            }),
        )
    }

    /// The LLM endpoint; the API key comes from `OPENAI_API_KEY`.
    pub fn llm(&self, endpoint: &EndpointArgs) -> anyhow::Result<LlmSettings> {
        self.llm_with(&endpoint_flags(endpoint))
    }

    fn llm_with(&self, flags: &LlmFlags) -> anyhow::Result<LlmSettings> {
        Ok(config::llm_settings(
            &self.file.llm,
            flags,
            config::api_key_from_env(),
        )?)
    }

    /// The loop's settings; `workers`: the FreeCAD pool's size (`None`: the configured one).
    pub fn run_loop(
        &self,
        llm: &LlmArgs,
        loop_args: &LoopArgs,
        limits: &LimitArgs,
        workers: Option<usize>,
    ) -> anyhow::Result<LoopSettings> {
        let recording = Recording {
            record: llm.record.clone(),
            replay: llm.replay.clone(),
        };
        let llm = match &llm.replay {
            Some(recording) => config::replay_settings(recording),
            None => self.llm_with(&LlmFlags {
                temperature: llm.temperature,
                max_tokens: llm.max_tokens,
                timeout_secs: llm.request_timeout,
                retries: llm.retries,
                no_stream: llm.no_stream,
                idle_timeout_secs: llm.idle_timeout,
                constrain: llm.constrain,
                ..endpoint_flags(&llm.endpoint)
            })?,
        };
        let budget = config::budget(
            &self.file.generate,
            loop_args.max_repairs,
            loop_args.max_refines,
        )?;
        let prompts = match loop_args
            .prompts
            .as_ref()
            .or(self.file.generate.prompts.as_ref())
        {
            Some(dir) => Prompts::load(dir)?,
            None => Prompts::builtin(),
        };
        let exec = self.exec(limits, None, workers)?;
        Ok(LoopSettings(EngineSettings {
            llm: Some(llm),
            recording,
            budget,
            prompts,
            executor: exec.executor,
            render: exec.render,
            captioner: self.caption(loop_args.captioner.as_deref(), None)?,
            checks: self.checks_on(loop_args),
        }))
    }

    /// Whether requests get checks: the flag, else the file, else on.
    fn checks_on(&self, loop_args: &LoopArgs) -> bool {
        loop_args
            .checks
            .map(OnOff::is_on)
            .or(self.file.generate.checks)
            .unwrap_or(true)
    }

    /// A tweak's settings: one FreeCAD worker, the views and captioner, no LLM.
    pub fn tweak(
        &self,
        captioner: Option<&Path>,
        limits: &LimitArgs,
    ) -> anyhow::Result<LoopSettings> {
        let exec = self.exec(limits, None, Some(1))?;
        Ok(LoopSettings(EngineSettings {
            llm: None,
            recording: Recording::default(),
            budget: config::budget(&self.file.generate, None, None)?,
            prompts: Prompts::builtin(),
            executor: exec.executor,
            render: exec.render,
            captioner: self.caption(captioner, None)?,
            // A tweak writes no checks; it runs again those its run has.
            checks: true,
        }))
    }

    /// The settings of the studio and the MCP server: the loop's, and
    /// without an LLM endpoint the same minus the LLM, with the message that
    /// says how to configure one.
    pub fn studio(
        &self,
        llm: &LlmArgs,
        loop_args: &LoopArgs,
        limits: &LimitArgs,
    ) -> anyhow::Result<(LoopSettings, Option<String>)> {
        match self.run_loop(llm, loop_args, limits, None) {
            Ok(settings) => Ok((settings, None)),
            Err(err) => match err.downcast_ref::<config::ConfigError>() {
                Some(config::ConfigError::NoEndpoint) => {
                    let LoopSettings(mut engine) =
                        self.tweak(loop_args.captioner.as_deref(), limits)?;
                    engine.budget = config::budget(
                        &self.file.generate,
                        loop_args.max_repairs,
                        loop_args.max_refines,
                    )?;
                    engine.executor.workers = self.exec(limits, None, None)?.executor.workers;
                    engine.checks = self.checks_on(loop_args);
                    Ok((LoopSettings(engine), Some(err.to_string())))
                }
                _ => Err(err),
            },
        }
    }

    /// The settings of a single run (generate, refine): one FreeCAD worker.
    pub fn one_run(&self, flags: &RunFlags) -> anyhow::Result<LoopSettings> {
        self.run_loop(&flags.llm, &flags.budget, &flags.limits, Some(1))
    }

    /// Bench's metrics and its scoring worker (one).
    pub fn bench(&self, metrics: &MetricArgs) -> anyhow::Result<BenchSettings> {
        Ok(BenchSettings {
            metrics: metric_settings(metrics)?,
            scoring: self.exec(&LimitArgs::default(), None, Some(1))?,
        })
    }
}

fn endpoint_flags(endpoint: &EndpointArgs) -> LlmFlags {
    LlmFlags {
        base_url: endpoint.base_url.clone(),
        model: endpoint.model.clone(),
        ..Default::default()
    }
}

/// The most points `--sampling poisson` draws per surface (about 300 MB at work).
const MAX_POISSON_SAMPLES: usize = 100_000;

/// Checked metric settings from the flags.
fn metric_settings(args: &MetricArgs) -> anyhow::Result<MetricSettings> {
    let own = MetricSettings::of(match args.protocol {
        ProtocolArg::Cadprompt => Protocol::Cadprompt,
        ProtocolArg::Text2cad => Protocol::Text2cad,
        ProtocolArg::Cadloop => Protocol::Cadloop,
    });
    let samples = args.samples.unwrap_or(own.samples);
    if !(10..=1_000_000).contains(&samples) {
        bail!("--samples {samples} is out of range; use 10 to 1000000");
    }
    if !(8..=256).contains(&args.voxels) {
        bail!("--voxels {} is out of range; use 8 to 256", args.voxels);
    }
    let sampling = match args.sampling {
        Some(SamplingArg::Poisson) => Sampling::Poisson,
        Some(SamplingArg::Uniform) => Sampling::Uniform,
        None => own.sampling,
    };
    // Poisson disk keeps five candidates per point and their neighbours in memory.
    if sampling == Sampling::Poisson && samples > MAX_POISSON_SAMPLES {
        bail!(
            "--samples {samples} is too many for Poisson-disk points (at most {MAX_POISSON_SAMPLES}); use fewer, or --sampling uniform"
        );
    }
    Ok(MetricSettings {
        samples,
        seed: args.seed,
        sampling,
        align: match args.align {
            Some(AlignArg::Icp) => Align::Icp,
            Some(AlignArg::None) => Align::None,
            None => own.align,
        },
        voxels: args.voxels,
        ..own
    })
}

impl LoopSettings {
    /// [`LoopSettings::start`] for one run (generate, refine), which Ctrl-C or
    /// SIGTERM stop. `Err(cause)` inside: a signal came while it started
    /// (the pool is shut down again).
    pub async fn start_one_run(self) -> anyhow::Result<Result<(Engine, RunSettings), Cause>> {
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
    pub async fn start(self, interrupt: Interrupt) -> anyhow::Result<(Engine, RunSettings)> {
        Ok(Engine::start(self.0, interrupt).await?)
    }
}

/// How to name a captioner model, for messages.
pub fn no_captioner_hint() -> &'static str {
    "give --captioner DIR (or set CADLOOP_CAPTIONER, or [captioner] model in cadloop.toml); \
     make a model folder with captioner/export.py (see captioner/README.md)"
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn settings(toml_text: &str) -> Settings {
        Settings {
            file: toml::from_str(toml_text).expect("valid settings"),
        }
    }

    fn loop_args(captioner: Option<&str>) -> LoopArgs {
        LoopArgs {
            max_repairs: None,
            max_refines: Some(1),
            captioner: captioner.map(PathBuf::from),
            prompts: None,
            checks: None,
        }
    }

    fn llm_args(base_url: &str) -> LlmArgs {
        LlmArgs {
            endpoint: EndpointArgs {
                base_url: Some(base_url.into()),
                model: Some("coder".into()),
            },
            temperature: None,
            max_tokens: None,
            request_timeout: None,
            retries: None,
            no_stream: false,
            idle_timeout: None,
            constrain: None,
            record: None,
            replay: None,
        }
    }

    /// The loop, doctor and `caption` see one captioner and one endpoint:
    /// each family is built by the same method from the same file.
    #[test]
    fn every_family_takes_the_file_once_and_flags_win() {
        let s = settings(
            "[captioner]\nmodel = \"/models/blip\"\nthreads = 3\nbeams = 2\n\
             [generate]\nmax_repairs = 4\n[render]\nsize = 200\n[llm]\nretries = 2\n",
        );
        let limits = LimitArgs {
            timeout: Some(7.0),
            memory_limit: None,
        };
        let LoopSettings(engine) = s
            .run_loop(
                &llm_args("http://127.0.0.1:9/v1"),
                &loop_args(None),
                &limits,
                Some(2),
            )
            .unwrap();
        assert_eq!(
            (engine.budget.max_repairs, engine.budget.max_refines),
            (4, 1)
        );
        assert_eq!(engine.executor.workers, 2);
        assert_eq!(engine.executor.timeout.as_secs_f64(), 7.0);
        assert_eq!(engine.render.size, 200);
        assert_eq!(engine.llm.as_ref().map(|l| l.retries), Some(2));
        let captioner = engine.captioner.expect("the file names a model");
        assert_eq!(captioner.model, PathBuf::from("/models/blip"));
        assert_eq!((captioner.threads, captioner.decoding.beams), (3, 2));

        let doctor = s
            .caption(Some(Path::new("/flag/model")), None)
            .unwrap()
            .unwrap();
        assert_eq!(doctor.model, PathBuf::from("/flag/model"));
        let endpoint = s.llm(&llm_args("http://127.0.0.1:9/v1/").endpoint).unwrap();
        assert_eq!(
            (endpoint.endpoint(), endpoint.retries),
            ("http://127.0.0.1:9/v1", 2)
        );
        let exec = s.exec(&LimitArgs::default(), Some(64), Some(1)).unwrap();
        assert_eq!((exec.executor.workers, exec.render.size), (1, 64));
    }

    #[test]
    fn a_bad_captioner_section_fails_even_without_a_model() {
        let s = settings("[captioner]\nbeams = 40\n");
        let err = s.caption(None, None).unwrap_err().to_string();
        assert!(
            err.starts_with("beams ([captioner] beams in the settings file): 40"),
            "{err}"
        );
        let err = settings("[captioner]\nthreads = 0\n")
            .caption(None, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("captioner.threads"), "{err}");
        assert!(settings("").caption(None, None).unwrap().is_none());
    }
}
