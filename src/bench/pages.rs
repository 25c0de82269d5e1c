//! bench.md (the tables) and index.html (one row per case) of a bench folder.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::batch;
use crate::metrics::{Metric, Protocol, Sampling, BASELINES};
use crate::report::index;

use super::stats::Estimate;
use super::table::{MetricSummary, Table};
use super::{BenchReport, Case, CaseScore};

/// What a protocol is, in the words bench.md uses.
fn protocol_line(report: &BenchReport) -> String {
    let s = &report.settings;
    let what = match report.protocol {
        Protocol::Cadprompt => "CADPrompt's published evaluation",
        Protocol::Text2cad => "the DeepCAD evaluation Text2CAD reports",
        Protocol::Cadloop => "cadloop's own",
    };
    let align = match (report.protocol, s.align) {
        (_, crate::metrics::Align::None) => "no alignment",
        (Protocol::Cadprompt, _) => "ICP from the identity",
        _ => "ICP from the 24 axis rotations",
    };
    let sampling = match s.sampling {
        Sampling::Poisson => "evenly spaced (Poisson disk)",
        Sampling::Uniform => "uniform by area",
    };
    let modified = if report.modified {
        " — **modified**: a setting differs from the protocol's own, so these numbers do not sit beside published ones"
    } else {
        ""
    };
    let rescored = report.rescored_from.map_or(String::new(), |before| {
        format!(" This folder was scored before with {before}; those numbers do not compare with these.")
    });
    format!(
        "Protocol **{}** ({what}){modified}: {} points per surface, {sampling} (seed {}), {align}. Intervals: 95 % percentile bootstrap over cases ({} resamples, seed {}).{rescored}",
        report.scored_by(),
        s.samples,
        s.seed,
        report.bootstrap.resamples,
        report.bootstrap.seed
    )
}

/// How far the protocol's figures stand from the published procedure's,
/// as measured (README, "Agreement with the published procedures").
fn known_differences(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Cadprompt => "Against the published procedure (Open3D's sampler, scikit-learn's ICP neighbours), on the same meshes, medians agree within 0.3 to 1.8 % (PCD, Hausdorff) and 0.001 (IoGT), averaged over five seeds on CADPrompt's development cases. What remains is the draw of points: each side has its own random generator, and one run's median moves by about 0.5 to 1 % (PCD) and 1 to 6 % (Hausdorff) from seed to seed.",
        Protocol::Text2cad => "Against DeepCAD's published evaluation, on the same meshes, medians agree within 1.3 %, averaged over five seeds on CADPrompt's development cases; one run's median moves by about 1 to 2 % from seed to seed. The reference's 2,000 points are drawn on its mesh, not taken from a stored denser cloud (the same distribution). A mesh beyond ±2 is divided by its largest coordinate and keeps its place, as the published code treats such an output, so its CD counts its size and position as well as its shape.",
        Protocol::Cadloop => "cadloop's own procedure: no published figures sit beside these.",
    }
}

fn estimate(e: Option<&Estimate>, digits: usize) -> String {
    e.map_or("–".to_string(), |e| e.text(digits))
}

fn percent(e: Option<&Estimate>) -> String {
    e.map_or("n/a".to_string(), |e| {
        format!(
            "{:.1} % [{:.1}, {:.1}]",
            e.value * 100.0,
            e.ci[0] * 100.0,
            e.ci[1] * 100.0
        )
    })
}

fn digits(metric: Metric) -> usize {
    match metric {
        Metric::Cd => 2,
        _ => 3,
    }
}

/// The median column of a metric, with its interval and count.
fn median_cell(summary: Option<&MetricSummary>, metric: Metric) -> String {
    summary.map_or("–".to_string(), |s| {
        format!("{} (n={})", s.median.text(digits(metric)), s.cases)
    })
}

/// bench.md: the tables.
pub fn markdown(report: &BenchReport) -> String {
    let metrics = report.protocol.metrics();
    let mut md = format!(
        "# cadloop bench: {}\n\n{} cases. {}\n\n{}\n\n",
        report.dataset,
        report.overall.cases,
        protocol_line(report),
        known_differences(report.protocol)
    );
    let mut header = "| set | cases | compile | success | checks passed |".to_string();
    let mut rule = "| --- | ---: | ---: | ---: | ---: |".to_string();
    for m in metrics {
        let _ = write!(
            header,
            " median {} [95 % CI] | mean {} |",
            m.label(),
            m.label()
        );
        rule.push_str(" ---: | ---: |");
    }
    let header = format!("{header}\n{rule}\n");
    let row = |name: &str, t: &Table| {
        let mut line = format!(
            "| {name} | {} | {} | {} | {} |",
            t.cases,
            percent(Some(&t.compile_rate)),
            percent(t.success_rate.as_ref()),
            t.checks_pass_rate.map_or("–".to_string(), |r| format!(
                "{:.1} % ({} cases)",
                r.value * 100.0,
                t.cases_with_checks
            ))
        );
        for &m in metrics {
            let s = t.metrics.get(&m);
            let _ = write!(
                line,
                " {} | {} |",
                median_cell(s, m),
                estimate(s.map(|s| &s.mean), digits(m))
            );
        }
        line + "\n"
    };
    md.push_str("## Overall\n\n");
    md.push_str(&header);
    md.push_str(&row("all", &report.overall));
    for (column, groups) in &report.strata {
        let _ = write!(md, "\n## By {column}\n\n{header}");
        for (name, t) in groups {
            md.push_str(&row(name, t));
        }
    }
    md.push_str(&failures_note(report));
    md.push_str(&baselines_markdown(report));
    md.push_str(&absolute_markdown(&report.overall));
    md.push_str(&cost_markdown(&report.overall));
    md.push_str(&rounds_markdown(&report.overall));
    md.push_str(&checks_markdown(&report.overall));
    md
}

/// How cases without a model entered the figures.
fn failures_note(report: &BenchReport) -> String {
    let t = &report.overall;
    let invalid = 1.0 - t.compile_rate.value;
    if report.protocol.failures_count() {
        format!(
            "\nCases without a valid model ({:.1} %) count in the medians with the protocol's failure scores.\n",
            invalid * 100.0
        )
    } else {
        format!(
            "\nInvalidity ratio {:.1} %: cases without a valid model are left out of the medians, as the protocol does.\n",
            invalid * 100.0
        )
    }
}

/// The system beside answers that know nothing of the shape.
fn baselines_markdown(report: &BenchReport) -> String {
    let t = &report.overall;
    if t.baselines.values().all(|b| b.is_empty()) {
        return String::new();
    }
    let metrics = report.protocol.metrics();
    let mut md = String::from("\n## Against shape-agnostic answers\n\nThe same protocol on the same references: what an answer that knows nothing of the shape scores, what a system that only got the size right scores, and the noise floor (the best a perfect result can expect).\n\n| answer |");
    let mut rule = String::from("| --- |");
    for m in metrics {
        let _ = write!(md, " median {} [95 % CI] |", m.label());
        rule.push_str(" ---: |");
    }
    let _ = write!(md, "\n{rule}\n| this system |");
    for &m in metrics {
        let _ = write!(md, " {} |", median_cell(t.metrics.get(&m), m));
    }
    md.push('\n');
    for (name, words) in BASELINES {
        let _ = write!(md, "| {words} |");
        for &m in metrics {
            let _ = write!(
                md,
                " {} |",
                median_cell(t.baselines.get(name).and_then(|b| b.get(&m)), m)
            );
        }
        md.push('\n');
    }
    md
}

fn absolute_markdown(t: &Table) -> String {
    let Some(a) = &t.absolute else {
        return String::new();
    };
    let [x, y, z] = a.median_size_error;
    let mut md = format!(
        "\n## Size and volume\n\nNormalising hides scale: over the {} cases with both meshes, the median error of the bounding-box sizes (sorted, largest first; in the references' units) is {x:.3}, {y:.3}, {z:.3}.",
        a.cases
    );
    match (&a.volume_ratio, a.volume_within_10_percent) {
        (Some(v), Some(share)) => {
            let _ = writeln!(
                md,
                " The median volume ratio (result ÷ reference) is {}; {:.1} % of the results are within 10 % of the reference's volume.",
                v.text(3),
                share * 100.0
            );
        }
        _ => md.push_str(" No pair of watertight meshes gave a volume ratio.\n"),
    }
    md
}

fn cost_markdown(t: &Table) -> String {
    let Some(c) = &t.cost else {
        return String::new();
    };
    let mut md = format!(
        "\n## Cost\n\n{} runs: {} LLM calls, {} prompt and {} completion tokens, {:.1} s of wall time ({} s per case).",
        c.runs,
        c.llm_calls,
        c.prompt_tokens,
        c.completion_tokens,
        c.seconds,
        c.seconds_per_case.text(1)
    );
    if let (Some(money), Some(per)) = (c.money, c.money_per_case) {
        let _ = write!(
            md,
            " At the given prices: {money:.4} in all, {per:.4} per case."
        );
    }
    md.push('\n');
    md
}

fn rounds_markdown(t: &Table) -> String {
    let Some(rounds) = t.success_by_round else {
        return "\nSuccess does not apply: these meshes came without run records.\n".into();
    };
    let mut md =
        String::from("\n## Success by refine round\n\n| after | success |\n| --- | ---: |\n");
    for (r, share) in rounds.iter().enumerate() {
        let label = if r == 0 {
            "first generation".to_string()
        } else {
            format!("{r} refine round{}", if r == 1 { "" } else { "s" })
        };
        let _ = writeln!(md, "| {label} | {:.1} % |", share * 100.0);
    }
    let _ = writeln!(md, "\nPer case: {:.2} repairs on average.", t.mean_repairs);
    md
}

/// bench.md's paragraph on the checks: how often results pass them, and how
/// often the LLM said MATCH while checks failed.
fn checks_markdown(t: &Table) -> String {
    let mut md = String::from("\n## Checks\n\n");
    match (t.checks_pass_rate, t.all_checks_pass) {
        (Some(rate), Some(all)) => {
            let _ = writeln!(
                md,
                "{} of {} results ran checks written from their prompts; they passed {:.1} % of them on average, and {:.1} % of those results passed all.",
                t.cases_with_checks,
                t.cases,
                rate.value * 100.0,
                all.value * 100.0
            );
        }
        _ => md.push_str("No result ran checks.\n"),
    }
    match t.overruled_match_rate {
        Some(rate) => {
            let _ = writeln!(
                md,
                "The LLM judged an attempt a MATCH {} times; {:.1} % of those attempts failed a check, so the verdict did not stand.",
                t.match_verdicts,
                rate * 100.0
            );
        }
        None => md.push_str("The LLM gave no MATCH verdict.\n"),
    }
    md
}

/// `index.html` of a bench folder: one row per case with its scores,
/// linking to the run's report (when the run is here) and the case page.
pub fn index(out: &Path, report: &BenchReport, cases: &[Case]) -> index::Index {
    let scores: HashMap<&str, &CaseScore> =
        report.cases.iter().map(|c| (c.id.as_str(), c)).collect();
    let metrics = report.protocol.metrics();
    let rows = cases
        .iter()
        .map(|case| {
            let relative = format!("{}/{}", batch::ITEMS_DIR, case.item.dir_name);
            let score = scores.get(case.item.id.as_str());
            let record = crate::report::read_run(&out.join(&relative)).ok();
            let mut row = index::IndexRow::for_run(
                out,
                &relative,
                &case.item.id,
                &case.item.prompt,
                score.map_or("missing", |s| s.outcome.as_str()),
                record.as_ref().map_or(0, |r| r.attempts.len()),
            );
            let case_dir = format!("cases/{}", case.item.dir_name);
            if out.join(&case_dir).join("case.md").is_file() {
                row.links.push(index::Link {
                    name: "comparison".into(),
                    href: format!("{case_dir}/case.md"),
                });
            }
            if row.thumbnail.is_none() && out.join(&case_dir).join("result.png").is_file() {
                row.thumbnail = Some(format!("{case_dir}/result.png"));
            }
            row.metrics = metrics
                .iter()
                .map(|&m| {
                    score
                        .and_then(|s| s.scores.as_ref()?.get(m))
                        .map_or("–".to_string(), |v| format!("{v:.4}"))
                })
                .collect();
            row
        })
        .collect();
    index::Index {
        kind: "cadloop bench".into(),
        title: report.dataset.clone(),
        summary: index_summary(report),
        metrics: metrics.iter().map(|m| m.label().to_string()).collect(),
        rows,
    }
}

fn index_summary(report: &BenchReport) -> Vec<String> {
    let t = &report.overall;
    let mut summary = vec![format!(
        "{} cases · compiled {} · success {} · protocol {}",
        t.cases,
        percent(Some(&t.compile_rate)),
        percent(t.success_rate.as_ref()),
        report.protocol.as_str()
    )];
    let first = report.protocol.metrics()[0];
    if let Some(s) = t.metrics.get(&first) {
        let cube = t.baselines.get("cube").and_then(|b| b.get(&first));
        summary.push(format!(
            "median {} {}{} · the full tables are in bench.md",
            first.label(),
            s.median.text(digits(first)),
            cube.map_or(String::new(), |c| format!(
                " (a fixed cube: {})",
                c.median.text(digits(first))
            ))
        ));
    }
    if let Some(c) = &t.cost {
        summary.push(format!(
            "cost: {} LLM calls, {} tokens, {:.1} s per case{}",
            c.llm_calls,
            c.prompt_tokens + c.completion_tokens,
            c.seconds_per_case.value,
            c.money
                .map_or(String::new(), |m| format!(", {m:.4} in all"))
        ));
    }
    if let Some(rate) = t.checks_pass_rate {
        summary.push(format!(
            "checks: {:.1} % passed over {} results · {} MATCH verdicts, {:.1} % of them with failing checks",
            rate.value * 100.0,
            t.cases_with_checks,
            t.match_verdicts,
            t.overruled_match_rate.unwrap_or(0.0) * 100.0
        ));
    }
    summary
}
