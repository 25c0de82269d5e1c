//! What each subcommand does, at the command level: checked settings in,
//! files and a summary out. Errors here are `anyhow` with context; the exit
//! code rules are in `main.rs`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};

use crate::caption;
use crate::cli::{CaptionArgs, ExecArgs, GlobalArgs, RenderArgs};
use crate::config::{self, ExecutorFlags};
use crate::executor::{ExecReport, ExecutorSettings, Job, Outcome, Pool, MODEL_FILES};
use crate::files;
use crate::mesh::Mesh;
use crate::render;

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
    let mut json = serde_json::to_vec_pretty(value)?;
    json.push(b'\n');
    files::write_atomically(path, &json).with_context(|| format!("cannot write {}", path.display()))
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
