//! What each subcommand does, at the command level: checked settings in,
//! files and a summary out. Errors here are `anyhow` with context; the exit
//! code rules are in `main.rs`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::batch::{self, InputFormat, InputOptions, ResultsLog};
use crate::bench;
use crate::caption::{self, Captioner};
use crate::cli::{
    AlignArg, BatchAction, BatchArgs, BatchFormat, BenchAction, BenchArgs, CaptionArgs, ExecArgs,
    GenerateArgs, GlobalArgs, LimitArgs, LlmArgs, LoopArgs, MetricArgs, PromptVariant, RefineArgs,
    RenderArgs, RunFlags,
};
use crate::config::{self, ExecutorFlags, FileConfig, LlmFlags};
use crate::executor::{ExecReport, ExecutorSettings, IgnoredKind, Job, Outcome, Pool, MODEL_FILES};
use crate::files;
use crate::interrupt::{Cause, Interrupt};
use crate::llm::{LlmClient, LlmSettings, Recording};
use crate::mesh::Mesh;
use crate::metrics::{Align, MetricSettings};
use crate::pipeline::{Budget, Engine, SharedCaptioner};
use crate::progress;
use crate::prompts::Prompts;
use crate::render::{self, RenderSettings};
use crate::report::{html, LlmRecord, RunSettings, RunSummary};

/// Exit status of a script (or a generated part) that failed.
pub const EXIT_FAILED: u8 = 1;

/// `cadloop exec SCRIPT --out DIR`.
pub async fn exec(global: &GlobalArgs, args: &ExecArgs) -> anyhow::Result<ExitCode> {
    let code = read_script(&args.script)?;
    let (file, _) = config::load_file(global.config.as_deref())?;
    let flags = ExecutorFlags {
        workers: Some(1),
        timeout_secs: args.timeout,
        memory_limit_mib: args.memory_limit,
    };
    let settings = config::executor_settings(&file.executor, &flags)?;
    let render_settings = config::render_settings(&file.render, args.size)?;
    let font = render::load_font()?;
    check_out_dir(&args.out)?;

    // FreeCAD starts before the folder is made, so a broken set-up leaves nothing behind.
    let pool = Pool::start(settings).await?;
    let out = create_out_dir(&args.out)?;
    remove_views(&out)?;
    let output = pool
        .run(Job {
            code: code.clone(),
            dir: out.clone(),
            timeout: None,
            inputs: Vec::new(),
        })
        .await?;
    pool.shutdown().await;

    let report = output.report;
    if let Some(mesh) = &output.mesh {
        let views = render::render(mesh, &render_settings)?;
        render::write_views(&out, &views, &render::contact_sheet(&views, &font))?;
    }
    write_json_atomically(&out.join("result.json"), &report)?;
    let script_name = args.script.file_name().map_or_else(
        || args.script.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    html::write_exec_page(&out, &script_name, &code, &report)
        .with_context(|| format!("cannot write {}", out.join(html::REPORT_FILE).display()))?;
    let mut stdout = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut stdout, &report)?;
        writeln!(stdout)?;
    } else {
        write!(stdout, "{}", summary(&args.script, &out, &report))?;
    }
    Ok(if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    })
}

/// `cadloop render MODEL --out DIR`.
pub async fn render(global: &GlobalArgs, args: &RenderArgs) -> anyhow::Result<ExitCode> {
    let (file, _) = config::load_file(global.config.as_deref())?;
    let settings = config::render_settings(&file.render, args.size)?;
    let font = render::load_font()?;
    let extension = args
        .model
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let mesh = match extension.as_str() {
        "stl" => render::read_stl(&args.model)?,
        "step" | "stp" | "fcstd" => {
            let flags = ExecutorFlags {
                workers: Some(1),
                ..Default::default()
            };
            mesh_with_freecad(
                &args.model,
                config::executor_settings(&file.executor, &flags)?,
            )
            .await?
        }
        _ => bail!(
            "{}: cannot render a .{extension} file; give an .stl, .step/.stp or .FCStd model",
            args.model.display()
        ),
    };
    let started = std::time::Instant::now();
    let views = render::render(&mesh, &settings)?;
    let elapsed = started.elapsed();
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create the folder {}", args.out.display()))?;
    render::write_views(&args.out, &views, &render::contact_sheet(&views, &font))?;
    println!(
        "rendered 7 views of {} ({} triangles) in {:.0} ms → {}, {}",
        args.model.display(),
        mesh.triangles.len(),
        elapsed.as_secs_f64() * 1000.0,
        args.out.join("views").display(),
        args.out.join("sheet.png").display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Meshes a STEP or FCStd file by running a small import script on a worker.
async fn mesh_with_freecad(model: &Path, settings: ExecutorSettings) -> anyhow::Result<Mesh> {
    let path = model
        .canonicalize()
        .with_context(|| format!("cannot read the model {}", model.display()))?;
    // The job reads its own copy of the model, by file name.
    let name = path
        .file_name()
        .context("the model path has no file name")?;
    let literal = serde_json::to_string(&name.to_string_lossy())?;
    let code = if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("fcstd"))
    {
        format!(
            "import FreeCAD, Part\nsource = FreeCAD.openDocument({literal})\n\
             solid = [o for o in source.Objects if hasattr(o, 'Shape') and o.Shape.Solids]\n\
             names = {{o.Name for o in solid}}\n\
             result = Part.makeCompound([o.Shape for o in solid if not any(u.Name in names for u in o.InList)])\n"
        )
    } else {
        format!("import Part\nresult = Part.read({literal})\n")
    };
    let scratch = tempfile::tempdir()?;
    let pool = Pool::start(settings).await?;
    let output = pool
        .run(Job {
            code,
            dir: scratch.path().to_path_buf(),
            timeout: None,
            inputs: vec![path.clone()],
        })
        .await?;
    pool.shutdown().await;
    match (output.mesh, output.report.outcome) {
        (Some(mesh), _) => Ok(mesh),
        (None, Outcome::Error { kind, message, .. }) => {
            bail!(
                "FreeCAD could not mesh {} ({kind}): {message}",
                model.display()
            )
        }
        (None, Outcome::Ok { .. }) => bail!("FreeCAD returned no mesh for {}", model.display()),
    }
}

/// Removes views left by an earlier run in the same folder, so they never
/// describe a different part than result.json.
fn remove_views(out: &Path) -> anyhow::Result<()> {
    let views = render::View::ALL.map(|v| out.join("views").join(format!("{}.png", v.name())));
    for path in views.iter().chain([&out.join("sheet.png")]) {
        files::remove_file_if_present(path)
            .with_context(|| format!("cannot remove {}", path.display()))?;
    }
    Ok(())
}

/// `cadloop caption IMAGE... --captioner DIR`.
pub fn caption(global: &GlobalArgs, args: &CaptionArgs) -> anyhow::Result<ExitCode> {
    let (file, _) = config::load_file(global.config.as_deref())?;
    let decoding = config::decoding(
        &file.captioner,
        args.beams,
        args.max_length,
        args.repetition_penalty,
        args.prefix.clone(),
    )?;
    let Some(dir) = config::captioner_dir(args.captioner.as_deref(), &file.captioner) else {
        bail!(
            "no captioner model: give --captioner DIR (or set CADLOOP_CAPTIONER); \
             make a model folder with captioner/export.py (see captioner/README.md)"
        );
    };
    // Every image is read before any work, so a bad one costs nothing.
    let images = args
        .images
        .iter()
        .map(|path| caption::load_image(path))
        .collect::<Result<Vec<_>, _>>()?;
    let threads = file
        .captioner
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let loading = std::time::Instant::now();
    let mut captioner = caption::Captioner::load(&dir, threads)?;
    let loaded = loading.elapsed();
    let captioning = std::time::Instant::now();
    let captions = captioner.caption(&images, &decoding)?;
    tracing::info!(
        images = images.len(),
        beams = decoding.beams,
        caption_ms = captioning.elapsed().as_secs_f64() * 1e3,
        load_ms = loaded.as_secs_f64() * 1e3,
        "captioned"
    );
    let mut stdout = std::io::stdout().lock();
    if args.json {
        let records: Vec<serde_json::Value> = args
            .images
            .iter()
            .zip(&captions)
            .map(
                |(path, c)| serde_json::json!({"image": path, "caption": c.text, "score": c.score}),
            )
            .collect();
        serde_json::to_writer_pretty(&mut stdout, &records)?;
        writeln!(stdout)?;
    } else {
        for c in &captions {
            writeln!(stdout, "{}", c.text)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn read_script(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read the script {}", path.display()))?;
    match String::from_utf8(bytes) {
        Ok(code) => Ok(code),
        Err(err) => {
            let at = err.utf8_error().valid_up_to();
            let line = err.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
            bail!(
                "{} is not UTF-8 text (bad byte at offset {at}, line {line}); save it as UTF-8",
                path.display()
            )
        }
    }
}

/// Checks that `--out` may be used: a new folder, an empty one, or an earlier
/// output (it has a result.json), so no file of the user's is overwritten.
pub fn check_out_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() && !dir.is_dir() {
        bail!(
            "--out {} exists and is not a folder; choose another path",
            dir.display()
        );
    }
    if dir.is_dir() && !dir.join("result.json").exists() {
        let mut entries = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read the folder {}", dir.display()))?;
        if entries.next().is_some() {
            bail!(
                "--out {} already holds files and is not an earlier cadloop output (no result.json); \
                 choose a new or empty folder",
                dir.display()
            );
        }
    }
    Ok(())
}

/// Creates the (checked) output folder and returns its absolute path: workers run elsewhere.
pub fn create_out_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the folder {}", dir.display()))?;
    dir.canonicalize()
        .with_context(|| format!("cannot resolve the folder {}", dir.display()))
}

/// Writes JSON through a temporary file and a rename, so a reader never sees half of it.
pub fn write_json_atomically(path: &Path, value: &impl serde::Serialize) -> anyhow::Result<()> {
    files::write_json_atomically(path, value)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The one-screen summary `exec` prints.
pub fn summary(script: &Path, out: &Path, report: &ExecReport) -> String {
    let mut text = String::new();
    let secs = report.timings.total_ms.unwrap_or(0.0) / 1000.0;
    match &report.outcome {
        Outcome::Ok { facts } => {
            let _ = writeln!(
                text,
                "ok: {} → {} ({secs:.2} s)",
                script.display(),
                out.display()
            );
            let [x, y, z] = facts.bbox.size;
            let _ = writeln!(
                text,
                "  solid       {} {} solid{}, volume {:.2} mm³, area {:.2} mm²",
                facts.solids,
                if facts.valid { "valid" } else { "INVALID" },
                if facts.solids == 1 { "" } else { "s" },
                facts.volume,
                facts.area
            );
            let [mx, my, mz] = facts.bbox.min;
            let _ = writeln!(
                text,
                "  size        {x:.2} × {y:.2} × {z:.2} mm (min corner {mx:.2}, {my:.2}, {mz:.2})"
            );
            let [cx, cy, cz] = facts.center_of_mass;
            let _ = writeln!(text, "  centre      {cx:.2}, {cy:.2}, {cz:.2}");
            let types: Vec<String> = facts
                .face_types
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            let _ = writeln!(
                text,
                "  topology    {} faces ({}), {} edges, {} vertices",
                facts.faces,
                types.join(", "),
                facts.edges,
                facts.vertices
            );
            let triangles = facts.tessellation.as_ref().map_or(0, |t| t.triangles);
            let _ = writeln!(
                text,
                "  files       {} ({triangles} triangles), result.json, views/, sheet.png",
                MODEL_FILES.join(", ")
            );
        }
        Outcome::Error {
            kind,
            message,
            line,
            ..
        } => {
            let at = line
                .map(|l| format!(" at code.py line {l}"))
                .unwrap_or_default();
            let _ = writeln!(
                text,
                "failed ({kind}){at}: {} ({secs:.2} s)",
                script.display()
            );
            for line in message.lines() {
                let _ = writeln!(text, "  {line}");
            }
            let _ = writeln!(text, "  details     {}", out.join("result.json").display());
        }
    }
    if !report.ignored.is_empty() {
        let gui = report
            .ignored
            .iter()
            .filter(|i| i.kind == IgnoredKind::Gui)
            .count();
        let writes = report.ignored.len() - gui;
        let lines: Vec<String> = report
            .ignored
            .iter()
            .filter_map(|i| i.line.map(|l| l.to_string()))
            .collect();
        let _ = writeln!(
            text,
            "  left out    {gui} GUI call{}, {writes} save{} outside the job (lines {}; see result.json)",
            if gui == 1 { "" } else { "s" },
            if writes == 1 { "" } else { "s" },
            lines.join(", ")
        );
    }
    if report.output.bytes > 0 {
        let _ = writeln!(
            text,
            "  output      {} bytes printed, in {}",
            report.output.bytes,
            out.join(crate::executor::OUTPUT_FILE).display()
        );
    }
    text
}

/// The loop's settings, checked; nothing started yet.
struct LoopConfig {
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
    fn for_one_run(global: &GlobalArgs, flags: &RunFlags) -> anyhow::Result<LoopConfig> {
        let (file, _) = config::load_file(global.config.as_deref())?;
        LoopConfig::check(&file, &flags.llm, &flags.budget, &flags.limits, Some(1))
    }

    /// `workers`: the FreeCAD pool's size (`None`: the configured one).
    fn check(
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
    async fn start_one_run(self) -> anyhow::Result<Result<(Engine, RunSettings), Cause>> {
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
    async fn start(self, interrupt: Interrupt) -> anyhow::Result<(Engine, RunSettings)> {
        let font = render::load_font()?;
        let llm = LlmClient::new(self.llm.clone(), &self.recording)?;
        let captioner = match self.captioner_dir {
            Some(dir) => {
                let threads = self.captioner_threads;
                let load_dir = dir.clone();
                let model =
                    tokio::task::spawn_blocking(move || Captioner::load(&load_dir, threads))
                        .await??;
                Some(SharedCaptioner {
                    dir,
                    model: Arc::new(Mutex::new(model)),
                    decoding: self.decoding.clone(),
                })
            }
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
            captioner: captioner.as_ref().map(|c| c.dir.display().to_string()),
            caption_beams: captioner.as_ref().map(|c| c.decoding.beams),
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

/// `cadloop generate PROMPT`.
pub async fn generate(global: &GlobalArgs, args: &GenerateArgs) -> anyhow::Result<ExitCode> {
    let prompt = read_prompt(args)?;
    let setup = LoopConfig::for_one_run(global, &args.run)?;
    let shown = match &args.out {
        Some(dir) => {
            check_run_dir(dir)?;
            dir.clone()
        }
        None => default_run_dir(&prompt),
    };
    let (engine, settings) = match setup.start_one_run().await? {
        Ok(started) => started,
        Err(cause) => {
            eprintln!(
                "{}: before the run started; nothing was written",
                cause.describe()
            );
            return Ok(ExitCode::from(cause.exit_code()));
        }
    };
    let created = !shown.exists();
    let out = create_out_dir(&shown)?;
    let _lock = lock_run_dir(&out)?;
    let bar = progress::spinner(!global.quiet && !args.run.json);
    let result = engine.run(&prompt, &out, settings, &bar).await;
    progress::finish(&bar);
    engine.pool.shutdown().await;
    let result = result.with_context(|| format!("the run in {} could not go on", out.display()))?;
    let ended_early = result.llm_error.is_some() || result.interrupted.is_some();
    if ended_early && result.record.attempts.is_empty() && created {
        // Nothing happened worth keeping: leave no folder behind.
        let _ = std::fs::remove_dir_all(&out);
    }
    report_run(&shown, &result, args.run.json)
}

/// Prints a run's summary (or its error) and gives the exit status.
fn report_run(
    shown: &Path,
    result: &crate::pipeline::RunResult,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let record = &result.record;
    if let (Some(cause), false) = (result.interrupted, shown.exists()) {
        eprintln!(
            "{}: before the first attempt; nothing was kept",
            cause.describe()
        );
        return Ok(ExitCode::from(cause.exit_code()));
    }
    if let Some(err) = &result.llm_error {
        if !record.outcome.has_model() {
            let mut message = record.error.clone().unwrap_or_else(|| err.to_string());
            if let Some(hint) = err.hint() {
                message.push_str(&format!("\n  hint: {hint}"));
            }
            if shown.exists() {
                message.push_str(&format!(
                    "\n  the attempts so far are in {}",
                    shown.display()
                ));
            }
            bail!(message);
        }
    }
    let summary = RunSummary::of(shown, record);
    let mut stdout = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut stdout, &summary)?;
        writeln!(stdout)?;
    } else {
        write!(stdout, "{}", summary.text(record))?;
    }
    if let Some(cause) = result.interrupted {
        eprintln!(
            "{}: the run stopped early; {} records what was done, and `cadloop refine` can go on from it",
            cause.describe(),
            shown.join(crate::report::RUN_FILE).display()
        );
        return Ok(ExitCode::from(cause.exit_code()));
    }
    Ok(if record.outcome.has_model() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    })
}

/// The prompt from the argument, standard input ("-") or --prompt-file; never empty.
fn read_prompt(args: &GenerateArgs) -> anyhow::Result<String> {
    read_request(
        args.prompt.as_deref(),
        args.prompt_file.as_deref(),
        ("PROMPT", "--prompt-file", "prompt"),
        "describe the part, e.g. \"a 40 x 20 x 10 mm block with a 6 mm hole\"",
    )
}

/// Text from an argument, standard input ("-") or a file; never empty.
/// `names`: the argument, the file flag, and what the text is.
fn read_request(
    arg: Option<&str>,
    file: Option<&Path>,
    names: (&str, &str, &str),
    example: &str,
) -> anyhow::Result<String> {
    let (arg_name, file_flag, what) = names;
    let (text, from) = match (arg, file) {
        (Some("-"), _) => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).with_context(|| {
                format!("cannot read the {what} from standard input (is it UTF-8 text?)")
            })?;
            (text, "standard input".to_string())
        }
        (Some(p), _) => (p.to_string(), format!("the {arg_name} argument")),
        (None, Some(path)) => (read_script(path)?, path.display().to_string()),
        (None, None) => bail!("give the {what} as {arg_name} or {file_flag} FILE"),
    };
    let text = text.trim().to_string();
    if text.is_empty() {
        bail!("the {what} ({from}) is empty; {example}");
    }
    const MAX_PROMPT_CHARS: usize = 20_000;
    if text.chars().count() > MAX_PROMPT_CHARS {
        bail!("the {what} ({from}) is longer than {MAX_PROMPT_CHARS} characters; shorten it");
    }
    Ok(text)
}

/// Holds a run folder for one cadloop at a time (an advisory lock on the
/// folder itself, released when the process ends however it ends).
fn lock_run_dir(dir: &Path) -> anyhow::Result<nix::fcntl::Flock<std::fs::File>> {
    let handle = std::fs::File::open(dir)
        .with_context(|| format!("cannot open the run folder {}", dir.display()))?;
    nix::fcntl::Flock::lock(handle, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(
        |(_, errno)| match errno {
            nix::errno::Errno::EWOULDBLOCK => anyhow::anyhow!(
                "another cadloop is working on {}; wait for it to finish",
                dir.display()
            ),
            other => anyhow::anyhow!("cannot lock the run folder {}: {other}", dir.display()),
        },
    )
}

/// `cadloop refine RUN_DIR CHANGE`.
pub async fn refine(global: &GlobalArgs, args: &RefineArgs) -> anyhow::Result<ExitCode> {
    let change = read_request(
        args.change.as_deref(),
        args.change_file.as_deref(),
        ("CHANGE", "--change-file", "change"),
        "say what to change, e.g. \"make the hole 8 mm\"",
    )?;
    let dir = &args.run_dir;
    if !dir.is_dir() {
        bail!(
            "{} is not a folder; give the run folder `cadloop generate` wrote (its path is in the summary)",
            dir.display()
        );
    }
    let out = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))?;
    let _lock = lock_run_dir(&out)?;
    let record = crate::report::read_run(&out)?;
    let from = start_attempt(&record, args.from_attempt)?;
    if record.status == crate::report::RunStatus::Running {
        tracing::warn!(
            "run.json says its last request never finished (the process was stopped); it stays recorded as it is"
        );
    }
    let next = crate::pipeline::attempt_path(record.attempts.len() as u32 + 1);
    if out.join(&next).exists() {
        bail!(
            "{} already exists but run.json records only {} attempts; the folder was changed by hand or by another program, so nothing was changed",
            out.join(&next).display(),
            record.attempts.len()
        );
    }
    let setup = LoopConfig::for_one_run(global, &args.run)?;
    let (engine, settings) = match setup.start_one_run().await? {
        Ok(started) => started,
        Err(cause) => {
            eprintln!(
                "{}: before the change started; {} is as it was",
                cause.describe(),
                dir.display()
            );
            return Ok(ExitCode::from(cause.exit_code()));
        }
    };
    let requests = record.requests.len();
    let bar = progress::spinner(!global.quiet && !args.run.json);
    let result = engine
        .refine(&out, record, &change, from, settings, &bar)
        .await;
    progress::finish(&bar);
    engine.pool.shutdown().await;
    let result = result.with_context(|| format!("the run in {} could not go on", dir.display()))?;
    let not_applied = result.record.requests.len() == requests;
    if let (Some(cause), true) = (result.interrupted, not_applied) {
        eprintln!(
            "{}: before the change made an attempt; {} is as it was",
            cause.describe(),
            dir.display()
        );
        return Ok(ExitCode::from(cause.exit_code()));
    }
    if let (Some(err), true) = (&result.llm_error, not_applied) {
        let mut message = format!("{err:#}");
        if let Some(hint) = err.hint() {
            message.push_str(&format!("\n  hint: {hint}"));
        }
        message.push_str(&format!(
            "\n  the change was not applied; {} is as it was",
            dir.display()
        ));
        bail!(message);
    }
    report_run(dir, &result, args.run.json)
}

/// The attempt a change starts from: the one asked for, else the run's result.
fn start_attempt(record: &crate::report::RunRecord, asked: Option<u32>) -> anyhow::Result<u32> {
    let built: Vec<String> = record
        .attempts
        .iter()
        .filter(|a| a.executed())
        .map(|a| a.number.to_string())
        .collect();
    let choose = if built.is_empty() {
        "no attempt of this run built a solid, so there is nothing to change; start again with `cadloop generate`".to_string()
    } else {
        format!(
            "choose one that built a solid with --from-attempt N: {}",
            built.join(", ")
        )
    };
    let n = match (asked, &record.chosen) {
        (Some(n), _) => n,
        (None, Some(choice)) => return Ok(choice.attempt),
        (None, None) => bail!("the run has no result to start from; {choose}"),
    };
    let Some(attempt) = record.attempts.get((n as usize).wrapping_sub(1)) else {
        bail!(
            "--from-attempt {n}: the run has attempts 1 to {}; {choose}",
            record.attempts.len()
        );
    };
    if let Outcome::Error { kind, line, .. } = &attempt.result.outcome {
        let at = line.map(|l| format!(" at line {l}")).unwrap_or_default();
        bail!("--from-attempt {n}: that attempt built no solid (it failed: {kind}{at}); {choose}");
    }
    Ok(n)
}

/// A run folder must be new or empty: a run never mixes its attempts with another's.
fn check_run_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() && !dir.is_dir() {
        bail!(
            "--out {} exists and is not a folder; choose another path",
            dir.display()
        );
    }
    if dir.is_dir() {
        let mut entries = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read the folder {}", dir.display()))?;
        if entries.next().is_some() {
            bail!(
                "--out {} already holds files; choose a new or empty folder (leave --out out for a fresh one under runs/)",
                dir.display()
            );
        }
    }
    Ok(())
}

/// `runs/<first words of the prompt>`, with -2, -3, … when taken.
fn default_run_dir(prompt: &str) -> PathBuf {
    let mut slug = String::new();
    for word in prompt
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(8)
    {
        if slug.len() + word.len() > 48 {
            break;
        }
        if !slug.is_empty() {
            slug.push('-');
        }
        slug.push_str(&word.to_ascii_lowercase());
    }
    if slug.is_empty() {
        slug.push_str("run");
    }
    let base = PathBuf::from("runs");
    let taken =
        |p: &Path| p.exists() && std::fs::read_dir(p).map_or(true, |mut e| e.next().is_some());
    let mut dir = base.join(&slug);
    let mut n = 2;
    while taken(&dir) {
        dir = base.join(format!("{slug}-{n}"));
        n += 1;
    }
    dir
}

/// `cadloop batch INPUT --out DIR` and `cadloop batch summary DIR`.
pub async fn batch(global: &GlobalArgs, args: &BatchArgs) -> anyhow::Result<ExitCode> {
    if let Some(BatchAction::Summary { dir, json }) = &args.action {
        return batch_summary(dir, *json);
    }
    let (Some(input), Some(out)) = (&args.input, &args.out) else {
        bail!("give the INPUT file and --out DIR");
    };
    let (file, _) = config::load_file(global.config.as_deref())?;
    let run = BatchRun::new(
        out,
        args.shard.as_deref(),
        args.jobs,
        Duration::from_secs(args.grace.unwrap_or(120)),
        global.quiet,
    )?;
    let format = match args.format {
        Some(BatchFormat::Jsonl) => InputFormat::Jsonl,
        Some(BatchFormat::Csv) => InputFormat::Csv,
        Some(BatchFormat::Text) => InputFormat::Text,
        None => InputFormat::of(input),
    };
    let options = InputOptions {
        format,
        id_column: args.id_column.clone(),
        prompt_column: args
            .prompt_column
            .clone()
            .unwrap_or_else(|| args.level.column().to_string()),
    };
    let (items, problems) = batch::read_items(input, &options)?;
    if !problems.is_empty() {
        if args.strict {
            return Err(batch::BatchError::Strict {
                path: input.clone(),
                count: problems.len(),
                list: problems
                    .iter()
                    .map(|p| format!("  {p}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            }
            .into());
        }
        for problem in &problems {
            tracing::warn!("{}: {problem}; skipped", input.display());
        }
    }
    if items.is_empty() {
        bail!("{} holds no usable prompt", input.display());
    }
    let read = items.len();
    let setup = LoopConfig::check(&file, &args.llm, &args.budget, &args.limits, None)?;
    tracing::info!(read, skipped_lines = problems.len(), "batch input");
    let (outcome, interrupted, log_path) = match run.go(setup, items).await? {
        Some(done) => done,
        None => return Ok(ExitCode::SUCCESS),
    };
    write_batch_index(out)?;
    println!(
        "batch: {} finished ({} without a model), {} cut short, {} not started → {}",
        outcome.finished,
        outcome.failed,
        outcome.errored,
        outcome.skipped,
        log_path.display()
    );
    Ok(batch_exit(&outcome, interrupted))
}

fn batch_exit(outcome: &batch::BatchOutcome, interrupted: bool) -> ExitCode {
    if let Some(reason) = &outcome.stopped {
        eprintln!("stopped early: {reason}; rerun the same command to go on");
    }
    if interrupted {
        ExitCode::from(EXIT_FAILED)
    } else if outcome.errored > 0 || outcome.stopped.is_some() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

/// Where and how a batch runs: shared by `batch` and `bench`.
struct BatchRun {
    out: PathBuf,
    shard: Option<(u32, u32)>,
    jobs: usize,
    grace: Duration,
    quiet: bool,
}

impl BatchRun {
    /// Checks `--shard K/N` and `--jobs` (default 4).
    fn new(
        out: &Path,
        shard: Option<&str>,
        jobs: Option<usize>,
        grace: Duration,
        quiet: bool,
    ) -> anyhow::Result<BatchRun> {
        let shard = shard.map(batch::parse_shard).transpose()?;
        let jobs = jobs.unwrap_or(4);
        if !(1..=256).contains(&jobs) {
            bail!("--jobs {jobs} is out of range; use 1 to 256");
        }
        Ok(BatchRun {
            out: out.to_path_buf(),
            shard,
            jobs,
            grace,
            quiet,
        })
    }

    /// Runs this shard's unfinished items. `None` when none was left to do.
    async fn go(
        &self,
        setup: LoopConfig,
        items: Vec<batch::Item>,
    ) -> anyhow::Result<Option<(batch::BatchOutcome, bool, PathBuf)>> {
        let mine = match self.shard {
            Some((k, n)) => batch::shard(items, k, n),
            None => items,
        };
        std::fs::create_dir_all(&self.out)
            .with_context(|| format!("cannot create the folder {}", self.out.display()))?;
        let out = self.out.canonicalize()?;
        let log = ResultsLog::open(&out, self.shard)?;
        let finished = batch::finished_ids(&out)?;
        let in_shard = mine.len();
        let todo: Vec<batch::Item> = mine
            .into_iter()
            .filter(|i| !finished.contains(&i.id))
            .collect();
        tracing::info!(
            in_shard,
            already_finished = in_shard - todo.len(),
            to_do = todo.len(),
            "batch items"
        );
        if todo.is_empty() {
            println!(
                "nothing to do: all {in_shard} items are finished in {}",
                out.display()
            );
            return Ok(None);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let interrupt = Interrupt::on_signals_draining(stop.clone())?;
        let (engine, settings) = setup.start(interrupt).await?;
        let engine = Arc::new(engine);
        let bar = progress::counter(todo.len() as u64, !self.quiet);
        let progress = batch::Progress {
            log_every: bar.is_none().then_some(Duration::from_secs(30)),
            bar: bar.clone().unwrap_or_else(indicatif::ProgressBar::hidden),
        };
        let log_path = log.path().to_path_buf();
        let outcome = batch::run(
            engine.clone(),
            todo,
            &out,
            settings,
            self.jobs,
            log,
            self.shard,
            progress,
            stop.clone(),
            self.grace,
        )
        .await;
        if let Some(bar) = &bar {
            progress::finish(bar);
        }
        engine.pool.shutdown().await;
        Ok(Some((outcome?, stop.load(Ordering::SeqCst), log_path)))
    }
}

/// Rewrites OUT/index.html from every results log there.
fn write_batch_index(out: &Path) -> anyhow::Result<()> {
    let summary = batch::summarize(out)?;
    let index = batch::index(out, &summary)?;
    html::write_index(out, &index)
        .with_context(|| format!("cannot write {}", out.join(html::INDEX_FILE).display()))
}

fn batch_summary(dir: &Path, json: bool) -> anyhow::Result<ExitCode> {
    if !dir.is_dir() {
        bail!("{} is not a batch output folder", dir.display());
    }
    let summary = batch::summarize(dir)?;
    if summary.logs.is_empty() {
        bail!(
            "{} holds no results*.jsonl; is it a batch output folder?",
            dir.display()
        );
    }
    write_batch_index(dir)?;
    let mut stdout = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut stdout, &summary)?;
        writeln!(stdout)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        stdout,
        "{} items from {}",
        summary.items,
        summary.logs.join(", ")
    )?;
    writeln!(
        stdout,
        "  success     {:.1} % ({} with a model)",
        summary.success_rate * 100.0,
        summary.with_model
    )?;
    let outcomes: Vec<String> = summary
        .outcomes
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    writeln!(stdout, "  outcomes    {}", outcomes.join(", "))?;
    writeln!(
        stdout,
        "  per item    {:.2} attempts, {:.2} repairs, {:.2} refines, {:.0} tokens, {:.1} s",
        summary.mean_attempts,
        summary.mean_repairs,
        summary.mean_refines,
        summary.mean_tokens,
        summary.mean_seconds
    )?;
    writeln!(
        stdout,
        "  in all      {} tokens, {:.1} s of item time",
        summary.total_tokens, summary.total_seconds
    )?;
    if summary.duplicates > 0 {
        writeln!(
            stdout,
            "  duplicates  {} records of ids already counted (ignored)",
            summary.duplicates
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Checked metric settings from the flags.
fn metric_settings(args: &MetricArgs) -> anyhow::Result<MetricSettings> {
    if !(10..=1_000_000).contains(&args.samples) {
        bail!(
            "--samples {} is out of range; use 10 to 1000000",
            args.samples
        );
    }
    if !(8..=256).contains(&args.voxels) {
        bail!("--voxels {} is out of range; use 8 to 256", args.voxels);
    }
    Ok(MetricSettings {
        samples: args.samples,
        seed: args.seed,
        align: match args.align {
            AlignArg::Icp => Align::Icp,
            AlignArg::None => Align::None,
        },
        voxels: args.voxels,
    })
}

fn variant(v: PromptVariant) -> bench::Variant {
    match v {
        PromptVariant::Plain => bench::Variant::Plain,
        PromptVariant::Measurements => bench::Variant::Measurements,
    }
}

fn load_cases(dataset: &Path, v: PromptVariant) -> anyhow::Result<Vec<bench::Case>> {
    let (cases, problems) = bench::load_dataset(dataset, variant(v))?;
    for problem in &problems {
        tracing::warn!("{}: {problem}; skipped", dataset.display());
    }
    if cases.is_empty() {
        bail!("{} holds no case", dataset.display());
    }
    Ok(cases)
}

/// `cadloop bench DATASET --out DIR` and `cadloop bench score`.
pub async fn bench(global: &GlobalArgs, args: &BenchArgs) -> anyhow::Result<ExitCode> {
    if let Some(BenchAction::Score {
        results,
        references,
        out,
        variant,
        metrics,
    }) = &args.action
    {
        let settings = metric_settings(metrics)?;
        let cases = load_cases(references, *variant)?;
        let (file, _) = config::load_file(global.config.as_deref())?;
        let scored = score_cases(&file, &cases, &settings, out, global.quiet, |case| {
            let model = results.join(format!("{}.stl", case.item.id));
            (None, model.is_file().then_some(model))
        })
        .await?;
        return finish_bench(references, &settings, &cases, scored, out);
    }
    let (Some(dataset), Some(out)) = (&args.dataset, &args.out) else {
        bail!("give the DATASET and --out DIR");
    };
    let settings = metric_settings(&args.metrics)?;
    let (file, _) = config::load_file(global.config.as_deref())?;
    let run = BatchRun::new(
        out,
        args.shard.as_deref(),
        args.jobs,
        Duration::from_secs(120),
        global.quiet,
    )?;
    let cases = load_cases(dataset, args.variant)?;
    let setup = LoopConfig::check(&file, &args.llm, &args.budget, &args.limits, None)?;
    let items = cases.iter().map(|c| c.item.clone()).collect();
    let ran = run.go(setup, items).await?;
    if let Some((outcome, interrupted, _)) = &ran {
        if *interrupted || outcome.stopped.is_some() {
            return Ok(batch_exit(outcome, *interrupted));
        }
    }
    let items_dir = out.join(batch::ITEMS_DIR);
    let scored = score_cases(&file, &cases, &settings, out, global.quiet, |case| {
        let (record, model) = bench::read_item(&items_dir.join(&case.item.dir_name));
        (record, model)
    })
    .await?;
    finish_bench(dataset, &settings, &cases, scored, out)
}

/// Scores every case; `find` gives a case's run record and model file.
async fn score_cases(
    file: &FileConfig,
    cases: &[bench::Case],
    settings: &MetricSettings,
    out: &Path,
    quiet: bool,
    find: impl Fn(&bench::Case) -> (Option<crate::report::RunRecord>, Option<PathBuf>),
) -> anyhow::Result<Vec<bench::CaseScore>> {
    let render_settings = config::render_settings(&file.render, None)?;
    let font = render::load_font()?;
    let bar = progress::counter(cases.len() as u64, !quiet);
    let mut scored = Vec::with_capacity(cases.len());
    for case in cases {
        let (record, model_path) = find(case);
        let model = match &model_path {
            Some(path) => Some(read_any_mesh(file, path).await?),
            None => None,
        };
        let reference = match &case.reference {
            Some(path) => Some(read_any_mesh(file, path).await?),
            None => None,
        };
        let score = bench::score_case(
            case,
            record.as_ref(),
            model.as_ref(),
            reference.as_ref(),
            settings,
        );
        write_case_page(
            out,
            case,
            &score,
            model.as_ref(),
            reference.as_ref(),
            &render_settings,
            &font,
        )?;
        scored.push(score);
        if let Some(bar) = &bar {
            bar.inc(1);
        }
    }
    if let Some(bar) = &bar {
        progress::finish(bar);
    }
    Ok(scored)
}

/// STL and OBJ directly, STEP through FreeCAD.
async fn read_any_mesh(file: &FileConfig, path: &Path) -> anyhow::Result<Mesh> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    if ext == "step" || ext == "stp" {
        let flags = ExecutorFlags {
            workers: Some(1),
            ..Default::default()
        };
        return mesh_with_freecad(path, config::executor_settings(&file.executor, &flags)?).await;
    }
    Ok(bench::read_mesh(path)?)
}

/// `cases/<id>/`: the reference's and the result's sheets and the scores.
fn write_case_page(
    out: &Path,
    case: &bench::Case,
    score: &bench::CaseScore,
    model: Option<&Mesh>,
    reference: Option<&Mesh>,
    settings: &RenderSettings,
    font: &ab_glyph::FontVec,
) -> anyhow::Result<()> {
    let dir = out.join("cases").join(&case.item.dir_name);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut page = format!(
        "# {}

{}

outcome: {}

",
        case.item.id, case.item.prompt, score.outcome
    );
    if let Some(s) = &score.scores {
        page.push_str(&format!(
            "| PCD | Hausdorff | IoGT | IoU |\n| ---: | ---: | ---: | ---: |\n| {:.4} | {:.4} | {:.4} | {:.4} |\n\n",
            s.pcd, s.hausdorff, s.iogt, s.iou
        ));
    }
    for (name, mesh) in [("reference", reference), ("result", model)] {
        let Some(mesh) = mesh else { continue };
        match render::render(mesh, settings) {
            Ok(views) => {
                render::write_png(
                    &dir.join(format!("{name}.png")),
                    &render::contact_sheet(&views, font),
                )?;
                page.push_str(&format!("## {name}\n\n![{name}]({name}.png)\n\n"));
            }
            Err(err) => page.push_str(&format!("## {name}\n\ncannot render: {err}\n\n")),
        }
    }
    files::write_atomically(&dir.join("case.md"), page.as_bytes())
        .with_context(|| format!("cannot write {}", dir.display()))
}

fn finish_bench(
    dataset: &Path,
    settings: &MetricSettings,
    cases: &[bench::Case],
    scored: Vec<bench::CaseScore>,
    out: &Path,
) -> anyhow::Result<ExitCode> {
    let report = bench::report(&dataset.display().to_string(), settings, scored);
    write_json_atomically(&out.join("bench.json"), &report)?;
    html::write_index(out, &bench::index(out, &report, cases))
        .with_context(|| format!("cannot write {}", out.join(html::INDEX_FILE).display()))?;
    let md = bench::markdown(&report);
    files::write_atomically(&out.join("bench.md"), md.as_bytes())
        .with_context(|| format!("cannot write {}", out.join("bench.md").display()))?;
    print!("{md}");
    Ok(ExitCode::SUCCESS)
}
