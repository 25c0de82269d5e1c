//! Benchmarks: datasets with (or without) reference meshes, scored with
//! `metrics` under a published protocol, summarised in tables with
//! intervals beside shape-agnostic baselines, and compared run against run.
//!
//! Stage in the flow: `cadloop bench DATASET` loads the cases here
//! ([`load_dataset`]), runs them through the batch engine, then
//! [`score_case`] scores each item's model (read by the executor's
//! `MeshLoader`) against its reference; `cadloop bench score` does the same
//! for another system's `<id>.stl` files. [`report`] turns the scored cases
//! into `bench.json`, [`markdown`] into `bench.md`, and [`compare`] sets two
//! bench folders on the same cases side by side (`cadloop bench compare`).
//!
//! - [`score`]: one case's scores, baselines, absolute errors and cost.
//! - [`table`]: tables over cases, with bootstrap intervals ([`stats`]).
//! - [`pages`]: bench.md and index.html.
//! - [`compare`]: paired differences between two bench folders.
//! - `sources`: a dataset's references as captioner training sources ([`caption_sources`]).
//!
//! Dataset layouts:
//! - CADPrompt: a folder of `<id>/` folders with
//!   `Natural_Language_Descriptions_Prompt.txt` (or `…_with_specific_measurements.txt`,
//!   `--variant measurements`) and `Ground_Truth.stl`; an optional `strata.csv`
//!   (`id,semantic_complexity,mesh_complexity`) beside them. Its prompts ask
//!   for CadQuery, which is rewritten to FreeCAD.
//! - A text file, one prompt per line (Query2CAD): no references.
//! - JSONL: `id`, `prompt`, optional `reference` (STL, OBJ or STEP; relative
//!   to the file).

pub mod compare;
pub mod pages;
pub mod score;
mod sources;
pub mod stats;
pub mod table;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::batch::{self, InputFormat, InputOptions, Item, Problem};
use crate::report::RunRecord;

pub use compare::{compare, Comparison};
pub use pages::{index, markdown};
pub use score::{score_case, CaseScore, Cost};
pub use sources::caption_sources;
pub use table::{report, BenchReport, Price, ScoredBy, Table};

/// A CADPrompt case's prompt file.
pub const PROMPT_FILE: &str = "Natural_Language_Descriptions_Prompt.txt";
/// A CADPrompt case's prompt with measurements (`--prompt measurements`).
pub const MEASUREMENTS_PROMPT_FILE: &str =
    "Natural_Language_Descriptions_Prompt_with_specific_measurements.txt";
/// A CADPrompt case's reference mesh.
pub const REFERENCE_FILE: &str = "Ground_Truth.stl";
/// The optional file of a dataset's strata (case id, stratum).
pub const STRATA_FILE: &str = "strata.csv";

/// A bench could not read its dataset, run or write its report.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Dataset { path: PathBuf, message: String },
    #[error("{} is not a usable strata table (id, then one column per stratification)", path.display())]
    Strata {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
    #[error(transparent)]
    Batch(#[from] batch::BatchError),
}

/// Which CADPrompt prompt to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    Plain,
    Measurements,
}

/// One benchmark case.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub item: Item,
    pub reference: Option<PathBuf>,
    /// Stratum names by table column (e.g. semantic_complexity → Simple).
    pub strata: BTreeMap<String, String>,
}

/// Loads a dataset: a CADPrompt folder, a JSONL file, or a text file of prompts.
pub fn load_dataset(
    path: &Path,
    variant: Variant,
) -> Result<(Vec<Case>, Vec<Problem>), BenchError> {
    if path.is_dir() {
        return load_cadprompt(path, variant);
    }
    let format = InputFormat::of(path);
    let options = InputOptions {
        format: if format == InputFormat::Jsonl {
            InputFormat::Jsonl
        } else {
            InputFormat::Text
        },
        id_column: String::new(),
        prompt_column: String::new(),
    };
    let (items, problems) = batch::read_items(path, &options)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let cases = items
        .into_iter()
        .map(|mut item| {
            let reference = match item.extra.remove("reference") {
                Some(serde_json::Value::String(r)) => Some(base.join(r)),
                _ => None,
            };
            Case {
                item,
                reference,
                strata: BTreeMap::new(),
            }
        })
        .collect();
    Ok((cases, problems))
}

fn load_cadprompt(dir: &Path, variant: Variant) -> Result<(Vec<Case>, Vec<Problem>), BenchError> {
    let read_dir = std::fs::read_dir(dir).map_err(|source| BenchError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut ids: Vec<String> = read_dir
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    ids.sort();
    let strata = read_strata(&dir.join(STRATA_FILE))?;
    let prompt_file = match variant {
        Variant::Plain => PROMPT_FILE,
        Variant::Measurements => MEASUREMENTS_PROMPT_FILE,
    };
    let mut cases = Vec::new();
    let mut problems = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        let case_dir = dir.join(id);
        let prompt = match std::fs::read_to_string(case_dir.join(prompt_file)) {
            Ok(text) if !text.trim().is_empty() => freecad_prompt(text.trim()),
            _ => {
                problems.push(Problem {
                    line: n + 1,
                    message: format!("{id}/{prompt_file} is missing or empty"),
                });
                continue;
            }
        };
        let reference = case_dir.join(REFERENCE_FILE);
        cases.push(Case {
            item: Item {
                id: id.clone(),
                dir_name: batch::safe_dir_name(id),
                prompt,
                line: n + 1,
                extra: serde_json::Map::new(),
            },
            reference: reference.is_file().then_some(reference),
            strata: strata.get(id).cloned().unwrap_or_default(),
        });
    }
    if cases.is_empty() {
        return Err(BenchError::Dataset {
            path: dir.to_path_buf(),
            message: format!("no case folder holds {prompt_file}; is this a CADPrompt folder?"),
        });
    }
    Ok((cases, problems))
}

/// `strata.csv`: id, then one column per stratification.
fn read_strata(path: &Path) -> Result<HashMap<String, BTreeMap<String, String>>, BenchError> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(HashMap::new());
    };
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|source| BenchError::Strata {
            path: path.to_path_buf(),
            source,
        })?
        .iter()
        .map(str::to_string)
        .collect();
    let mut out = HashMap::new();
    for record in reader.records() {
        let record = record.map_err(|source| BenchError::Strata {
            path: path.to_path_buf(),
            source,
        })?;
        let Some(id) = record.get(0) else { continue };
        let strata = headers
            .iter()
            .zip(record.iter())
            .skip(1)
            .map(|(h, v)| (h.clone(), v.to_string()))
            .collect();
        out.insert(id.to_string(), strata);
    }
    Ok(out)
}

/// CADPrompt's prompts ask for CadQuery; cadloop writes FreeCAD.
pub fn freecad_prompt(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let lower = text.to_ascii_lowercase();
    let mut at = 0;
    while let Some(found) = lower[at..].find("cadquery") {
        let start = at + found;
        out.push_str(&text[at..start]);
        out.push_str("FreeCAD");
        at = start + "cadquery".len();
    }
    out.push_str(&text[at..]);
    out
}

/// Reads a batch item's run record and model, when they exist.
pub fn read_item(dir: &Path) -> (Option<RunRecord>, Option<PathBuf>) {
    // Through report's reader, so a run.json of another format counts as none.
    let record = crate::report::read_run(dir).ok();
    let model = dir.join("model.stl");
    let has_model = record.as_ref().is_some_and(|r| r.outcome.has_model());
    (record, (has_model && model.is_file()).then_some(model))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cadquery_becomes_freecad_in_any_case() {
        assert_eq!(
            freecad_prompt("write a python code using CADquery to create a disc. Use cadQuery."),
            "write a python code using FreeCAD to create a disc. Use FreeCAD."
        );
    }

    #[test]
    fn a_cadprompt_folder_with_strata_loads() {
        let dir = tempfile::tempdir().unwrap();
        for (id, prompt) in [
            ("00000001", "using CADQuery make a disc"),
            ("00000002", "a plate"),
        ] {
            std::fs::create_dir(dir.path().join(id)).unwrap();
            std::fs::write(dir.path().join(id).join(PROMPT_FILE), prompt).unwrap();
            std::fs::write(
                dir.path().join(id).join(MEASUREMENTS_PROMPT_FILE),
                format!("{prompt}, 10 mm"),
            )
            .unwrap();
        }
        std::fs::write(
            dir.path().join("00000001").join(REFERENCE_FILE),
            "solid x\nendsolid x\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join(STRATA_FILE),
            "id,semantic_complexity,mesh_complexity\n00000001,Simple,Complex\n",
        )
        .unwrap();
        let (cases, problems) = load_dataset(dir.path(), Variant::Measurements).unwrap();
        assert!(problems.is_empty());
        assert_eq!(cases.len(), 2);
        assert_eq!(cases[0].item.prompt, "using FreeCAD make a disc, 10 mm");
        assert!(cases[0].reference.is_some() && cases[1].reference.is_none());
        assert_eq!(cases[0].strata["semantic_complexity"], "Simple");
        assert!(cases[1].strata.is_empty());
    }
}
