//! What each subcommand does, at the command level: checked settings in,
//! files and a summary out. Errors here are `anyhow` with context; the exit
//! code rules are in `main.rs`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};

use std::sync::{Arc, Mutex};

use crate::caption::{self, Captioner};
use crate::cli::{CaptionArgs, ExecArgs, GenerateArgs, GlobalArgs, RenderArgs};
use crate::config::{self, ExecutorFlags, LlmFlags};
use crate::executor::{ExecReport, ExecutorSettings, Job, Outcome, Pool, MODEL_FILES};
use crate::files;
use crate::llm::LlmClient;
use crate::mesh::Mesh;
use crate::pipeline::{Engine, SharedCaptioner};
use crate::progress;
use crate::prompts::Prompts;
use crate::render;
use crate::report::{LlmRecord, RunRecord, RunSettings, Stage, RUN_FILE, TRANSCRIPT_FILE};

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
            code,
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
        match std::fs::remove_file(path) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                return Err(err).with_context(|| format!("cannot remove {}", path.display()))
            }
            _ => {}
        }
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

/// `cadloop generate PROMPT`.
pub async fn generate(global: &GlobalArgs, args: &GenerateArgs) -> anyhow::Result<ExitCode> {
    let prompt = read_prompt(args)?;
    let (file, _) = config::load_file(global.config.as_deref())?;
    let llm_flags = LlmFlags {
        base_url: args.llm.base_url.clone(),
        model: args.llm.model.clone(),
        temperature: args.llm.temperature,
        max_tokens: args.llm.max_tokens,
        timeout_secs: args.llm.request_timeout,
        retries: args.llm.retries,
    };
    let llm_settings = config::llm_settings(&file.llm, &llm_flags, config::api_key_from_env())?;
    let budget = config::budget(
        &file.generate,
        args.budget.max_repairs,
        args.budget.max_refines,
    )?;
    let prompts = match args.budget.prompts.as_ref().or(file.generate.prompts.as_ref()) {
        Some(dir) => Prompts::load(dir)?,
        None => Prompts::builtin(),
    };
    let flags = ExecutorFlags {
        workers: Some(1),
        timeout_secs: args.timeout,
        memory_limit_mib: args.memory_limit,
    };
    let exec_settings = config::executor_settings(&file.executor, &flags)?;
    let render_settings = config::render_settings(&file.render, None)?;
    let decoding = config::decoding(&file.captioner, None, None, None, None)?;
    let font = render::load_font()?;
    let shown = match &args.out {
        Some(dir) => {
            check_run_dir(dir)?;
            dir.clone()
        }
        None => default_run_dir(&prompt),
    };
    let llm = LlmClient::new(llm_settings.clone())?;

    let captioner = match config::captioner_dir(args.budget.captioner.as_deref(), &file.captioner) {
        Some(dir) => {
            let threads = file
                .captioner
                .threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
            let load_dir = dir.clone();
            let model = tokio::task::spawn_blocking(move || Captioner::load(&load_dir, threads))
                .await??;
            Some(SharedCaptioner {
                dir,
                model: Arc::new(Mutex::new(model)),
                decoding: decoding.clone(),
            })
        }
        None => {
            tracing::info!("no captioner model (--captioner): the critique will see the geometry facts only");
            None
        }
    };
    let pool = Arc::new(Pool::start(exec_settings.clone()).await?);
    let created = !shown.exists();
    let out = create_out_dir(&shown)?;
    let settings = RunSettings {
        llm: LlmRecord {
            base_url: llm_settings.endpoint().to_string(),
            model: llm_settings.model.clone(),
            temperature: llm_settings.temperature,
            max_tokens: llm_settings.max_tokens,
            request_timeout_secs: llm_settings.request_timeout.as_secs_f64(),
            retries: llm_settings.retries,
        },
        max_repairs: budget.max_repairs,
        max_refines: budget.max_refines,
        captioner: captioner.as_ref().map(|c| c.dir.display().to_string()),
        caption_beams: captioner.as_ref().map(|c| c.decoding.beams),
        view_size: render_settings.size,
        exec_timeout_secs: exec_settings.timeout.as_secs_f64(),
        memory_limit_mib: exec_settings.memory_limit_mib,
        prompts: prompts.origins().to_vec(),
    };
    let engine = Engine {
        llm,
        prompts,
        pool: pool.clone(),
        captioner,
        render: render_settings,
        font: Arc::new(font),
        budget,
        allowed_modules: exec_settings.allowed_imports.clone(),
    };
    let bar = progress::spinner(!global.quiet && !args.json);
    let result = engine.run(&prompt, &out, settings, &bar).await;
    progress::finish(&bar);
    pool.shutdown().await;
    let result = result.with_context(|| format!("the run in {} could not go on", out.display()))?;

    let record = &result.record;
    if let Some(err) = &result.llm_error {
        if record.attempts.is_empty() && created {
            // Nothing happened worth keeping: leave no folder behind.
            let _ = std::fs::remove_dir_all(&out);
        }
        if !record.outcome.has_model() {
            let mut message = record.error.clone().unwrap_or_else(|| err.to_string());
            if let Some(hint) = err.hint() {
                message.push_str(&format!("\n  hint: {hint}"));
            }
            if out.exists() {
                message.push_str(&format!("\n  the attempts so far are in {}", shown.display()));
            }
            bail!(message);
        }
    }
    let summary = RunSummary::of(&shown, record);
    let mut stdout = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut stdout, &summary)?;
        writeln!(stdout)?;
    } else {
        write!(stdout, "{}", summary.text(record))?;
    }
    Ok(if record.outcome.has_model() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    })
}

/// The prompt from the argument, standard input ("-") or --prompt-file; never empty.
fn read_prompt(args: &GenerateArgs) -> anyhow::Result<String> {
    let (text, from) = match (&args.prompt, &args.prompt_file) {
        (Some(p), _) if p == "-" => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .context("cannot read the prompt from standard input (is it UTF-8 text?)")?;
            (text, "standard input".to_string())
        }
        (Some(p), _) => (p.clone(), "the PROMPT argument".to_string()),
        (None, Some(path)) => (read_script(path)?, path.display().to_string()),
        (None, None) => bail!("give the part as PROMPT or --prompt-file FILE"),
    };
    let text = text.trim().to_string();
    if text.is_empty() {
        bail!("the prompt ({from}) is empty; describe the part, e.g. \"a 40 x 20 x 10 mm block with a 6 mm hole\"");
    }
    const MAX_PROMPT_CHARS: usize = 20_000;
    if text.chars().count() > MAX_PROMPT_CHARS {
        bail!("the prompt ({from}) is longer than {MAX_PROMPT_CHARS} characters; shorten it");
    }
    Ok(text)
}

/// A run folder must be new or empty: a run never mixes its attempts with another's.
fn check_run_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() && !dir.is_dir() {
        bail!("--out {} exists and is not a folder; choose another path", dir.display());
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
    let taken = |p: &Path| p.exists() && std::fs::read_dir(p).map_or(true, |mut e| e.next().is_some());
    let mut dir = base.join(&slug);
    let mut n = 2;
    while taken(&dir) {
        dir = base.join(format!("{slug}-{n}"));
        n += 1;
    }
    dir
}

/// What `generate` prints: a few lines, or this as JSON with --json.
#[derive(Debug, serde::Serialize)]
pub struct RunSummary {
    pub out: PathBuf,
    pub outcome: String,
    pub stop_reason: String,
    pub attempts: usize,
    pub repairs: usize,
    pub refines: usize,
    pub final_attempt: Option<u32>,
    pub verdict: Option<String>,
    pub files: Vec<String>,
    pub seconds: f64,
    pub llm_calls: u32,
    pub tokens: crate::llm::Usage,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RunSummary {
    pub fn of(out: &Path, record: &RunRecord) -> RunSummary {
        let count = |stage| record.attempts.iter().filter(|a| a.stage == stage).count();
        let chosen = record
            .chosen
            .as_ref()
            .and_then(|c| record.attempts.get(c.attempt as usize - 1));
        let mut files = vec![RUN_FILE.to_string(), TRANSCRIPT_FILE.to_string()];
        if record.outcome.has_model() {
            files.extend(MODEL_FILES.iter().map(|f| f.to_string()));
            files.extend(["views/".to_string(), "sheet.png".to_string()]);
        }
        RunSummary {
            out: out.to_path_buf(),
            outcome: record.outcome.as_str().to_string(),
            stop_reason: record.stop_reason.clone(),
            attempts: record.attempts.len(),
            repairs: count(Stage::Repair),
            refines: count(Stage::Refine),
            final_attempt: record.chosen.as_ref().map(|c| c.attempt),
            verdict: chosen
                .and_then(|a| a.critique.as_ref())
                .and_then(|c| c.verdict)
                .map(|v| v.as_str().to_string()),
            files,
            seconds: record.timings.total_ms / 1000.0,
            llm_calls: record.llm_calls,
            tokens: record.usage,
            error: record.error.clone(),
        }
    }

    fn text(&self, record: &RunRecord) -> String {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "{}: {} ({} attempt{}, {} repair{}, {} refine{}; {:.1} s, {} LLM calls, {} tokens)",
            self.outcome,
            self.out.display(),
            self.attempts,
            plural(self.attempts),
            self.repairs,
            plural(self.repairs),
            self.refines,
            plural(self.refines),
            self.seconds,
            self.llm_calls,
            self.tokens.total_tokens
        );
        let _ = writeln!(text, "  stopped     {}", self.stop_reason);
        match (&record.chosen, self.final_attempt) {
            (Some(choice), Some(n)) => {
                let _ = writeln!(text, "  result      attempt {n}: {}", choice.why);
                if let Some(facts) = record.attempts[n as usize - 1].result.facts() {
                    let [x, y, z] = facts.bbox.size;
                    let _ = writeln!(
                        text,
                        "  solid       {x:.2} × {y:.2} × {z:.2} mm, volume {:.2} mm³, {} solid{}",
                        facts.volume,
                        facts.solids,
                        if facts.solids == 1 { "" } else { "s" }
                    );
                }
            }
            _ => {
                if let Some(last) = record.attempts.last() {
                    if let Outcome::Error { kind, message, line, .. } = &last.result.outcome {
                        let at = line.map(|l| format!(" at line {l}")).unwrap_or_default();
                        let first = message.lines().last().unwrap_or("");
                        let _ = writeln!(text, "  last error  {kind}{at}: {first}");
                    }
                }
            }
        }
        if let Some(error) = &self.error {
            let _ = writeln!(text, "  LLM error   {error}");
        }
        let _ = writeln!(text, "  files       {}", self.files.join(", "));
        let _ = writeln!(text, "  attempts    {}", self.out.join("attempts").display());
        text
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
