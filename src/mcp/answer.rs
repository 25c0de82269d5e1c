//! What the tools answer: a run's latest result as structured content and
//! a few lines of text, and PNG images.

use base64::Engine as _;
use rmcp::model::ContentBlock;
use serde_json::{json, Value};

use crate::executor::Outcome;
use crate::report::RunRecord;

pub(super) fn png_block(png: &[u8]) -> ContentBlock {
    ContentBlock::image(
        base64::engine::general_purpose::STANDARD.encode(png),
        "image/png",
    )
}

/// A run's latest result as a tool gives it; `code`: with the result's
/// script (for runs the LLM wrote).
pub(super) fn summary(id: &str, record: &RunRecord, code: bool) -> Value {
    let mut out = json!({
        "run": id,
        "outcome": record.outcome,
        "attempts": record.attempts.len(),
    });
    if !record.stop_reason.is_empty() {
        out["stop_reason"] = json!(record.stop_reason);
    }
    let Some(attempt) = record.chosen_attempt().or(record.attempts.last()) else {
        out["error"] = json!({ "message": crate::pipeline::why_no_result(record) });
        return out;
    };
    out["attempt"] = json!(attempt.number);
    if let Some(facts) = attempt.result.facts().filter(|_| attempt.executed()) {
        out["facts"] = json!({
            "volume": facts.volume,
            "area": facts.area,
            "size": facts.bbox.size,
            "min": facts.bbox.min,
            "max": facts.bbox.max,
            "solids": facts.solids,
            "faces": facts.faces,
            "face_types": facts.face_types,
            "valid": facts.valid,
        });
        if !facts.parts.is_empty() {
            out["facts"]["parts"] = facts
                .parts
                .iter()
                .map(|p| {
                    json!({"name": p.name, "color": p.color, "size": p.bbox.size,
                           "min": p.bbox.min, "max": p.bbox.max, "volume": p.volume})
                })
                .collect();
            out["facts"]["pairs"] = json!(facts.pairs);
        }
        let notes: Vec<String> = attempt
            .result
            .diagnosis
            .iter()
            .filter(|d| d.severity == crate::executor::Severity::Note)
            .map(crate::executor::Defect::with_fix)
            .collect();
        if attempt.result.is_ok() && !notes.is_empty() {
            out["notes"] = json!(notes);
        }
    }
    out["parameters"] = attempt
        .result
        .parameters
        .iter()
        .map(|p| json!({ "name": p.name, "value": p.value, "kind": p.kind, "comment": p.comment }))
        .collect();
    out["changes"] = attempt.changes.iter().map(ToString::to_string).collect();
    if !attempt.result.checks.is_empty() {
        let tally = crate::checks::Tally::of(&attempt.result.checks);
        out["checks"] = json!({
            "passed": tally.passed,
            "total": tally.total,
            "results": attempt.result.checks,
        });
    }
    if code {
        out["code"] = json!(attempt.code);
    }
    if let Outcome::Error {
        kind,
        message,
        line,
        ..
    } = &attempt.result.outcome
    {
        out["error"] = json!({
            "kind": kind.to_string(),
            "line": line,
            "message": message,
            "hint": kind.hint(),
            "diagnosis": attempt.result.diagnosis.iter().map(crate::executor::Defect::with_fix).collect::<Vec<_>>(),
        });
    }
    out
}

/// The summary in a few lines of text, for hosts that show only text.
pub(super) fn describe(summary: &Value) -> String {
    let mut lines = vec![format!(
        "run {} · {}",
        summary["run"].as_str().unwrap_or(""),
        summary["outcome"].as_str().unwrap_or("")
    )];
    if let Some(facts) = summary.get("facts") {
        lines.push(format!(
            "size {} mm, volume {:.1} mm³, {} solid(s), {} faces, {}",
            facts["size"]
                .as_array()
                .map(|s| s
                    .iter()
                    .map(|v| format!("{:.2}", v.as_f64().unwrap_or(0.0)))
                    .collect::<Vec<_>>()
                    .join(" × "))
                .unwrap_or_default(),
            facts["volume"].as_f64().unwrap_or(0.0),
            facts["solids"],
            facts["faces"],
            if facts["valid"] == true {
                "valid"
            } else {
                "not valid"
            }
        ));
    }
    if let Some(facts) = summary.get("facts") {
        for part in facts["parts"].as_array().into_iter().flatten() {
            let size: Vec<String> = part["size"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| format!("{:.2}", v.as_f64().unwrap_or(0.0)))
                .collect();
            lines.push(format!(
                "part {} {}: {} mm, volume {:.1} mm³",
                part["name"],
                part["color"].as_str().unwrap_or(""),
                size.join(" × "),
                part["volume"].as_f64().unwrap_or(0.0)
            ));
        }
    }
    for note in summary["notes"].as_array().into_iter().flatten() {
        lines.push(format!("noticed: {}", note.as_str().unwrap_or("")));
    }
    if let Some(error) = summary.get("error") {
        let at = error["line"]
            .as_u64()
            .map(|l| format!(" at line {l}"))
            .unwrap_or_default();
        lines.push(format!(
            "failed: {}{at}: {}",
            error["kind"].as_str().unwrap_or("error"),
            error["message"].as_str().unwrap_or("")
        ));
        for fix in error["diagnosis"].as_array().into_iter().flatten() {
            lines.push(format!("  {}", fix.as_str().unwrap_or("")));
        }
        if let Some(hint) = error["hint"].as_str() {
            lines.push(format!("hint: {hint}"));
        }
    }
    if let Some(checks) = summary.get("checks") {
        lines.push(format!(
            "checks: {}/{} passed",
            checks["passed"], checks["total"]
        ));
        for result in checks["results"].as_array().into_iter().flatten() {
            if result["status"] != "pass" {
                lines.push(format!(
                    "  {} {}: {}",
                    result["status"].as_str().unwrap_or(""),
                    result["call"].as_str().unwrap_or(""),
                    result["message"].as_str().unwrap_or("")
                ));
            }
        }
    }
    if let Some(reason) = summary["stop_reason"].as_str() {
        lines.push(format!("stopped: {reason}"));
    }
    if let Some(parameters) = summary["parameters"].as_array().filter(|p| !p.is_empty()) {
        let named: Vec<String> = parameters
            .iter()
            .map(|p| format!("{} = {}", p["name"].as_str().unwrap_or(""), p["value"]))
            .collect();
        lines.push(format!("parameters: {}", named.join(", ")));
    }
    if let Some(code) = summary["code"].as_str() {
        lines.push(format!("```python\n{}\n```", code.trim_end()));
    }
    lines.join("\n")
}
