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
use crate::metrics::{Metric, MetricSettings, Scores, BASELINES};
use crate::progress;
use crate::render::{self, RenderSettings};
use crate::report::index;

use super::batch::{batch_exit, BatchRun};
use super::settings::{BenchSettings, Settings};
use super::{write_json_atomically, ExitStatus};

/// The CADPrompt prompt a `--variant` flag names.
pub(super) fn variant(v: PromptVariant) -> bench::Variant {
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

/// `cadloop bench DATASET --out DIR`, `cadloop bench score` and `cadloop bench compare`.
pub async fn bench(global: &GlobalArgs, args: &BenchArgs) -> anyhow::Result<ExitStatus> {
    match &args.action {
        Some(BenchAction::Score {
            results,
            references,
            out,
            variant,
            metrics,
        }) => {
            let settings = Settings::read(global)?.bench(metrics)?;
            let cases = load_cases(references, *variant)?;
            let scored = score_cases(&settings, &cases, out, global.quiet, |case| {
                let model = results.join(format!("{}.stl", case.item.id));
                (None, model.is_file().then_some(model))
            })
            .await?;
            return finish_bench(references, &settings.metrics, None, &cases, scored, out);
        }
        Some(BenchAction::Compare { a, b, out }) => return compare(a, b, out.as_deref()),
        None => {}
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
        args.grace
            .map_or(crate::batch::DEFAULT_GRACE, Duration::from_secs),
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
    let price = price(args)?;
    finish_bench(dataset, &settings.metrics, price, &cases, scored, out)
}

/// What scored `out` before, when it was another protocol or revision
/// than `report`'s; says so on stderr, and what changed.
fn earlier_scoring(out: &Path, report: &bench::BenchReport) -> Option<bench::ScoredBy> {
    let path = out.join("bench.json");
    let text = std::fs::read_to_string(&path).ok()?;
    let before = bench::ScoredBy::of_json(&serde_json::from_str(&text).ok()?)?;
    let now = report.scored_by();
    if before == now {
        return None;
    }
    let change = if before.protocol == now.protocol {
        now.protocol
            .changes_since(before.version)
            .map_or(String::new(), |c| format!(" ({c})"))
    } else {
        String::new()
    };
    eprintln!(
        "note: {} was scored with {before}; it is now scored with {now}{change}, so its numbers change",
        path.display(),
    );
    Some(before)
}

/// `--price-in` and `--price-out`, checked.
fn price(args: &BenchArgs) -> anyhow::Result<Option<bench::Price>> {
    match (args.price_in, args.price_out) {
        (Some(input), Some(output)) => {
            if !(input.is_finite() && output.is_finite() && input >= 0.0 && output >= 0.0) {
                bail!("--price-in and --price-out must be numbers of 0 or more (money per million tokens)");
            }
            Ok(Some(bench::Price { input, output }))
        }
        _ => Ok(None),
    }
}

/// `cadloop bench compare A B [--out DIR]`.
fn compare(a: &Path, b: &Path, out: Option<&Path>) -> anyhow::Result<ExitStatus> {
    let read = |dir: &Path| -> anyhow::Result<bench::BenchReport> {
        let path = dir.join("bench.json");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read {}; is {} a bench folder?",
                path.display(),
                dir.display()
            )
        })?;
        serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a bench.json this cadloop reads; score the folder again with `cadloop bench`",
                path.display()
            )
        })
    };
    let (report_a, report_b) = (read(a)?, read(b)?);
    let comparison = bench::compare(
        &report_a,
        &report_b,
        &a.display().to_string(),
        &b.display().to_string(),
    )?;
    let md = match out {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let link = |p: &Path| relative_link(dir, p);
            let md = bench::compare::markdown(&comparison, &link(a), &link(b));
            write_json_atomically(&dir.join("compare.json"), &comparison)?;
            files::write_atomically(&dir.join("compare.md"), md.as_bytes())
                .with_context(|| format!("cannot write {}", dir.join("compare.md").display()))?;
            md
        }
        None => bench::compare::markdown(
            &comparison,
            &a.display().to_string(),
            &b.display().to_string(),
        ),
    };
    print!("{md}");
    Ok(ExitStatus::Success)
}

/// `target` as a link from a page in `from` (absolute when no relative path is known).
fn relative_link(from: &Path, target: &Path) -> String {
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let (from, target) = (absolute(from), absolute(target));
    let common = from
        .components()
        .zip(target.components())
        .take_while(|(x, y)| x == y)
        .count();
    if common == 0 {
        return target.display().to_string();
    }
    let ups = from.components().count() - common;
    let mut link: Vec<String> = vec!["..".to_string(); ups];
    link.extend(
        target
            .components()
            .skip(common)
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    if link.is_empty() {
        ".".into()
    } else {
        link.join("/")
    }
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
    page.push_str(&case_scores(score));
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

/// case.md's table: the result's scores beside the baselines', and the absolute errors.
fn case_scores(score: &bench::CaseScore) -> String {
    let Some(scores) = &score.scores else {
        return String::new();
    };
    let metrics: Vec<Metric> = Metric::ALL
        .into_iter()
        .filter(|m| {
            scores.get(*m).is_some()
                || score
                    .baselines
                    .as_ref()
                    .is_some_and(|b| b.cube.get(*m).is_some())
        })
        .collect();
    let mut table = String::from("| answer |");
    let mut rule = String::from("| --- |");
    for m in &metrics {
        table.push_str(&format!(" {} |", m.label()));
        rule.push_str(" ---: |");
    }
    table.push_str(&format!("\n{rule}\n"));
    let mut row = |name: &str, s: &Scores| {
        table.push_str(&format!("| {name} |"));
        for m in &metrics {
            table.push_str(
                &s.get(*m)
                    .map_or(" – |".to_string(), |v| format!(" {v:.4} |")),
            );
        }
        table.push('\n');
    };
    row("this result", scores);
    if let Some(b) = &score.baselines {
        for (name, words) in BASELINES {
            if let Some(s) = b.get(name) {
                row(words, s);
            }
        }
    }
    if let Some(a) = &score.absolute {
        let [x, y, z] = a.size_error;
        table.push_str(&format!(
            "\nSizes against the reference's (sorted, in its units): {x:+.3}, {y:+.3}, {z:+.3}{}.\n",
            a.volume_ratio.map_or(String::new(), |r| format!("; volume ratio {r:.3}"))
        ));
    }
    table + "\n"
}

fn finish_bench(
    dataset: &Path,
    settings: &MetricSettings,
    price: Option<bench::Price>,
    cases: &[bench::Case],
    scored: Vec<bench::CaseScore>,
    out: &Path,
) -> anyhow::Result<ExitStatus> {
    let mut report = bench::report(&dataset.display().to_string(), settings, price, scored);
    report.rescored_from = earlier_scoring(out, &report);
    write_json_atomically(&out.join("bench.json"), &report)?;
    index::write_index(out, &bench::index(out, &report, cases))
        .with_context(|| format!("cannot write {}", out.join(index::INDEX_FILE).display()))?;
    let md = bench::markdown(&report);
    files::write_atomically(&out.join("bench.md"), md.as_bytes())
        .with_context(|| format!("cannot write {}", out.join("bench.md").display()))?;
    print!("{md}");
    Ok(ExitStatus::Success)
}
