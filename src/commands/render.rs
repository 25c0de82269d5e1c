//! `cadloop render MODEL --out DIR`: the seven views of a model file.

use anyhow::{bail, Context};

use crate::cli::{GlobalArgs, LimitArgs, RenderArgs};
use crate::executor::MeshLoader;
use crate::render;

use super::settings::Settings;
use super::ExitStatus;

/// `cadloop render MODEL --out DIR`.
pub async fn render(global: &GlobalArgs, args: &RenderArgs) -> anyhow::Result<ExitStatus> {
    let settings = Settings::read(global)?.exec(&LimitArgs::default(), args.size, Some(1))?;
    let font = render::load_font()?;
    let extension = args
        .model
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    if !matches!(extension.as_str(), "stl" | "glb" | "step" | "stp" | "fcstd") {
        bail!(
            "{}: cannot render a .{extension} file; give an .stl, .glb, .step/.stp or .FCStd model",
            args.model.display()
        );
    }
    let loader = MeshLoader::new(settings.executor);
    let mesh = loader.load(&args.model).await;
    loader.shutdown().await;
    let mesh = mesh?;
    let started = std::time::Instant::now();
    let views = render::render(&mesh, &settings.render)?;
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
    Ok(ExitStatus::Success)
}
