//! `cadloop bench DATASET --out DIR` and `cadloop bench score`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};

use crate::batch;
use crate::bench;
use crate::cli::{BenchAction, BenchArgs, GlobalArgs, PromptVariant};
use crate::executor::MeshLoader;
use crate::files;
use crate::mesh::Mesh;
use crate::metrics::MetricSettings;
use crate::progress;
use crate::render::{self, RenderSettings};
use crate::report::index;

use super::batch::{batch_exit, BatchRun};
use super::settings::{BenchSettings, Settings};
use super::{write_json_atomically, ExitStatus};

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
pub async fn bench(global: &GlobalArgs, args: &BenchArgs) -> anyhow::Result<ExitStatus> {
    if let Some(BenchAction::Score {
        results,
        references,
        out,
        variant,
        metrics,
    }) = &args.action
    {
        let settings = Settings::read(global)?.bench(metrics)?;
        let cases = load_cases(references, *variant)?;
        let scored = score_cases(&settings, &cases, out, global.quiet, |case| {
            let model = results.join(format!("{}.stl", case.item.id));
            (None, model.is_file().then_some(model))
        })
        .await?;
        return finish_bench(references, &settings.metrics, &cases, scored, out);
    }
    let (Some(dataset), Some(out)) = (&args.dataset, &args.out) else {
        bail!("give the DATASET and --out DIR");
    };
    let file = Settings::read(global)?;
    let settings = file.bench(&args.metrics)?;
    let run = BatchRun::new(
        out,
        args.shard.as_deref(),
        args.jobs,
        Duration::from_secs(120),
        global.quiet,
    )?;
    let cases = load_cases(dataset, args.variant)?;
    let setup = file.run_loop(&args.llm, &args.budget, &args.limits, None)?;
    let items = cases.iter().map(|c| c.item.clone()).collect();
    let ran = run.go(setup, items).await?;
    if let Some((outcome, interrupted, _)) = &ran {
        if interrupted.is_some() || outcome.stopped.is_some() {
            return Ok(batch_exit(outcome, *interrupted));
        }
    }
    let items_dir = out.join(batch::ITEMS_DIR);
    let scored = score_cases(&settings, &cases, out, global.quiet, |case| {
        bench::read_item(&items_dir.join(&case.item.dir_name))
    })
    .await?;
    finish_bench(dataset, &settings.metrics, &cases, scored, out)
}

/// Scores every case; `find` gives a case's run record and model file.
async fn score_cases(
    settings: &BenchSettings,
    cases: &[bench::Case],
    out: &Path,
    quiet: bool,
    find: impl Fn(&bench::Case) -> (Option<crate::report::RunRecord>, Option<PathBuf>),
) -> anyhow::Result<Vec<bench::CaseScore>> {
    let font = render::load_font()?;
    let bar = progress::counter(cases.len() as u64, !quiet);
    // One FreeCAD pool for every STEP or FCStd model, started only if one comes.
    let loader = MeshLoader::new(settings.scoring.executor.clone());
    let mut scored = Vec::with_capacity(cases.len());
    let mut failed = None;
    for case in cases {
        match score_one(case, &find, &loader, settings, out, &font).await {
            Ok(score) => scored.push(score),
            Err(err) => {
                failed = Some(err);
                break;
            }
        }
        if let Some(bar) = &bar {
            bar.inc(1);
        }
    }
    loader.shutdown().await;
    if let Some(bar) = &bar {
        progress::finish(bar);
    }
    match failed {
        Some(err) => Err(err),
        None => Ok(scored),
    }
}

/// Scores one case and writes its page.
async fn score_one(
    case: &bench::Case,
    find: &impl Fn(&bench::Case) -> (Option<crate::report::RunRecord>, Option<PathBuf>),
    loader: &MeshLoader,
    settings: &BenchSettings,
    out: &Path,
    font: &ab_glyph::FontVec,
) -> anyhow::Result<bench::CaseScore> {
    let (record, model_path) = find(case);
    let model = match &model_path {
        Some(path) => Some(loader.load(path).await?),
        None => None,
    };
    let reference = match &case.reference {
        Some(path) => Some(loader.load(path).await?),
        None => None,
    };
    let score = bench::score_case(
        case,
        record.as_ref(),
        model.as_ref(),
        reference.as_ref(),
        &settings.metrics,
    );
    write_case_page(
        out,
        case,
        &score,
        model.as_ref(),
        reference.as_ref(),
        &settings.scoring.render,
        font,
    )?;
    Ok(score)
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
) -> anyhow::Result<ExitStatus> {
    let report = bench::report(&dataset.display().to_string(), settings, scored);
    write_json_atomically(&out.join("bench.json"), &report)?;
    index::write_index(out, &bench::index(out, &report, cases))
        .with_context(|| format!("cannot write {}", out.join(index::INDEX_FILE).display()))?;
    let md = bench::markdown(&report);
    files::write_atomically(&out.join("bench.md"), md.as_bytes())
        .with_context(|| format!("cannot write {}", out.join("bench.md").display()))?;
    print!("{md}");
    Ok(ExitStatus::Success)
}
