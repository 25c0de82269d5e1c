//! `cadloop captions-dataset DATASET --out DIR`: a captioner training set of
//! rendered references and their texts.

use anyhow::{bail, Context};

use crate::caption::dataset::{self, MetadataLine, Split};
use crate::cli::{CaptionsDatasetArgs, GlobalArgs, LimitArgs, ViewSet};
use crate::executor::MeshLoader;
use crate::files;
use crate::progress;
use crate::render::{self, View};

use super::settings::Settings;
use super::ExitStatus;

/// `cadloop captions-dataset DATASET --out DIR`.
pub async fn captions_dataset(
    global: &GlobalArgs,
    args: &CaptionsDatasetArgs,
) -> anyhow::Result<ExitStatus> {
    if !(0.0..=1.0).contains(&args.split) {
        bail!(
            "--split {} is not a share; give a number from 0 to 1 (0.9: 90 % of the models train)",
            args.split
        );
    }
    if args.jobs == Some(0) {
        bail!("--jobs 0: give at least 1 (models loaded and rendered at once)");
    }
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let settings = Settings::read(global)?.exec(&LimitArgs::default(), args.size, Some(jobs))?;
    let variant = super::bench::variant(args.variant);
    let (sources, skipped) = crate::bench::caption_sources(
        &args.dataset,
        variant,
        args.level.column(),
        args.meshes.as_deref(),
    )?;
    for reason in &skipped {
        tracing::warn!("{}: {reason}; skipped", args.dataset.display());
    }
    if sources.is_empty() {
        bail!("{} holds no model to render", args.dataset.display());
    }
    let views: Vec<View> = match args.views {
        ViewSet::All => View::ALL.to_vec(),
        ViewSet::Iso => vec![View::Iso],
    };
    let images = args.out.join("images");
    std::fs::create_dir_all(&images)
        .with_context(|| format!("cannot create {}", images.display()))?;
    let bar = progress::counter(sources.len() as u64, !global.quiet);
    let made = render_all(&sources, &views, args, jobs, &settings, bar.as_ref()).await?;
    if let Some(bar) = &bar {
        progress::finish(bar);
    }
    let (lines, rendered, failed) = (made.lines, made.rendered, made.failed);
    for reason in &failed {
        tracing::warn!("{reason}; left out");
    }
    write_metadata(&args.out, &lines)?;
    let models = |split| lines.iter().filter(|l| l.split == split).count() / views.len();
    println!(
        "{} models ({} rendered now, {} already there) → {}: {} images; {} models train, {} validate{}",
        lines.len() / views.len(),
        rendered,
        lines.len() / views.len() - rendered,
        args.out.display(),
        lines.len(),
        models(Split::Train),
        models(Split::Validation),
        if skipped.len() + failed.len() > 0 {
            format!("; {} left out (see the warnings)", skipped.len() + failed.len())
        } else {
            String::new()
        }
    );
    Ok(ExitStatus::Success)
}

/// What rendering the sources gave.
struct Made {
    lines: Vec<MetadataLine>,
    /// Models rendered now (the others' images were there).
    rendered: usize,
    /// Models whose file could not be read, with the reason.
    failed: Vec<String>,
}

/// What became of one model.
enum Outcome {
    Rendered,
    AlreadyThere,
    Failed(String),
}

/// Renders each source's views that are not there yet, `jobs` models at a
/// time; gives the metadata of every model whose images exist, in the
/// sources' order.
async fn render_all(
    sources: &[dataset::Source],
    views: &[View],
    args: &CaptionsDatasetArgs,
    jobs: usize,
    settings: &super::settings::ExecSettings,
    bar: Option<&indicatif::ProgressBar>,
) -> anyhow::Result<Made> {
    use futures_util::stream::{self, StreamExt};

    let loader = MeshLoader::new(settings.executor.clone());
    let outcomes: Vec<anyhow::Result<Outcome>> = stream::iter(sources)
        .map(|source| {
            let loader = &loader;
            async move {
                let outcome = render_one(source, views, args, settings, loader).await;
                if let Some(bar) = bar {
                    bar.inc(1);
                }
                outcome
            }
        })
        .buffered(jobs)
        .collect()
        .await;
    loader.shutdown().await;
    let mut made = Made {
        lines: Vec::new(),
        rendered: 0,
        failed: Vec::new(),
    };
    for (source, outcome) in sources.iter().zip(outcomes) {
        match outcome? {
            Outcome::Failed(reason) => {
                made.failed.push(reason);
                continue;
            }
            Outcome::Rendered => made.rendered += 1,
            Outcome::AlreadyThere => {}
        }
        made.lines
            .extend(dataset::metadata(source, views, args.split));
    }
    Ok(made)
}

/// One model's views: kept when they are all there (a stopped run resumes
/// where it was), else loaded, rendered off the async threads and written.
async fn render_one(
    source: &dataset::Source,
    views: &[View],
    args: &CaptionsDatasetArgs,
    settings: &super::settings::ExecSettings,
    loader: &MeshLoader,
) -> anyhow::Result<Outcome> {
    let wanted: Vec<_> = views
        .iter()
        .map(|&v| (v, args.out.join(dataset::image_name(source, v))))
        .collect();
    if wanted.iter().all(|(_, path)| path.is_file()) {
        return Ok(Outcome::AlreadyThere);
    }
    let mesh = match loader.load(&source.model).await {
        Ok(mesh) => mesh,
        Err(err) => {
            return Ok(Outcome::Failed(format!(
                "{}: {}",
                source.id,
                crate::error_chain(&err)
            )))
        }
    };
    let render = settings.render.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let all = render::render(&mesh, &render)?;
        for (view, path) in &wanted {
            render::write_png(path, all.get(*view))?;
        }
        Ok(())
    })
    .await
    .context("the rendering thread stopped")??;
    Ok(Outcome::Rendered)
}

/// `metadata.jsonl`, one line per image, written whole or not at all.
fn write_metadata(out: &std::path::Path, lines: &[MetadataLine]) -> anyhow::Result<()> {
    let mut text = String::new();
    for line in lines {
        text.push_str(&serde_json::to_string(line)?);
        text.push('\n');
    }
    let path = out.join("metadata.jsonl");
    files::write_atomically(&path, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}
