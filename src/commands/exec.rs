//! `cadloop exec SCRIPT --out DIR`: one script in a worker, its models, views, result.json and page.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use anyhow::Context;

use crate::cli::{ExecArgs, GlobalArgs};
use crate::executor::{ExecReport, GeometryFacts, IgnoredKind, Job, Outcome, Pool, MODEL_FILES};
use crate::files;
use crate::render;
use crate::report::html;

use super::settings::Settings;
use super::{check_out_dir, create_out_dir, read_script, write_json_atomically, ExitStatus};

/// `cadloop exec SCRIPT --out DIR`.
pub async fn exec(global: &GlobalArgs, args: &ExecArgs) -> anyhow::Result<ExitStatus> {
    let code = read_script(&args.script)?;
    let checks = match &args.checks {
        Some(path) => read_checks(path)?,
        None => Vec::new(),
    };
    let settings = Settings::read(global)?.exec(&args.limits, args.size, Some(1))?;
    let font = render::load_font()?;
    check_out_dir(&args.out)?;

    // FreeCAD starts before the folder is made, so a broken set-up leaves nothing behind.
    let pool = Pool::start(settings.executor).await?;
    let out = create_out_dir(&args.out)?;
    remove_views(&out)?;
    let output = pool
        .run(Job {
            code: code.clone(),
            dir: out.clone(),
            timeout: None,
            inputs: Vec::new(),
            checks,
        })
        .await?;
    pool.shutdown().await;

    let report = output.report;
    let views = match (&output.mesh, &output.refused) {
        (Some(mesh), _) => Some(render::render(mesh, &settings.render)?),
        // The refused shape, its free edges marked: the page shows where it is open.
        (None, Some(refused)) => render::render(refused, &settings.render)
            .map_err(|err| {
                tracing::warn!(
                    error = %crate::error_chain(&err),
                    "the refused shape cannot be drawn; no views"
                )
            })
            .ok(),
        (None, None) => None,
    };
    if let Some(views) = views {
        render::write_views(&out, &views, &render::contact_sheet(&views, &font))?;
    }
    write_json_atomically(&out.join(crate::run::RESULT_FILE), &report)?;
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
        ExitStatus::Success
    } else {
        ExitStatus::Failed
    })
}

/// The checks in `path`, read; a file that cannot be read or parsed is a
/// usage error naming the file and line.
fn read_checks(path: &Path) -> anyhow::Result<Vec<crate::checks::CheckCall>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the checks file {}", path.display()))?;
    crate::checks::Checks::parse(&text)
        .map(|checks| checks.calls)
        .map_err(|err| {
            anyhow::anyhow!(
                "{}, line {}: {}; write the checks as `CHECKS = [bbox(40, 20, 10), ...]` \
                 with the functions the README lists",
                path.display(),
                err.line,
                err.message
            )
        })
}

/// Removes views left by an earlier run in the same folder, so they never
/// describe a different part than result.json.
fn remove_views(out: &Path) -> anyhow::Result<()> {
    let views = render::View::ALL.map(|v| {
        out.join(render::VIEWS_DIR)
            .join(format!("{}.png", v.name()))
    });
    for path in views.iter().chain([&out.join(render::SHEET_FILE)]) {
        files::remove_file_if_present(path)
            .with_context(|| format!("cannot remove {}", path.display()))?;
    }
    Ok(())
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
            write_facts(&mut text, facts);
            for defect in &report.diagnosis {
                let what = if defect.healed { "healed" } else { "note" };
                let _ = writeln!(text, "  {what}: {defect}");
            }
            if !report.checks.is_empty() {
                let tally = crate::checks::Tally::of(&report.checks);
                let _ = writeln!(text, "  {tally}");
                for check in &report.checks {
                    let _ = writeln!(
                        text,
                        "    {:<5} {}: {}",
                        check.status.as_str(),
                        check.call,
                        check.message
                    );
                }
            }
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
            let sheet = out.join(render::SHEET_FILE);
            if !report.free_edges.is_empty() && sheet.is_file() {
                let _ = writeln!(
                    text,
                    "  views       {} (the refused shape, its free edges in red)",
                    sheet.display()
                );
            }
            let _ = writeln!(
                text,
                "  details     {}",
                out.join(crate::run::RESULT_FILE).display()
            );
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

/// The solid's lines of the summary.
fn write_facts(text: &mut String, facts: &GeometryFacts) {
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
    for part in &facts.parts {
        let [x, y, z] = part.bbox.size;
        let _ = writeln!(
            text,
            "  part        {:?} {}: {x:.2} × {y:.2} × {z:.2} mm, volume {:.2} mm³",
            part.name, part.color, part.volume
        );
    }
    for pair in facts.pairs.iter().filter(|p| p.overlap > 0.0) {
        let _ = writeln!(
            text,
            "  OVERLAP     {:?} and {:?} share {:.2} mm³",
            pair.parts[0], pair.parts[1], pair.overlap
        );
    }
    let triangles = facts.tessellation.as_ref().map_or(0, |t| t.triangles);
    let _ = writeln!(
        text,
        "  files       {} ({triangles} triangles), result.json, views/, sheet.png{}",
        MODEL_FILES.join(", "),
        if facts.parts.is_empty() {
            ""
        } else {
            ", parts/*.stl"
        }
    );
}
