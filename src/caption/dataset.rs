//! A captioner training set from a CAD dataset: each reference rendered
//! exactly as the loop renders attempts, each image paired with its text,
//! and a train/validation split by model id (no model in both).
//!
//! Stage in the flow: `cadloop captions-dataset` reads the dataset
//! (`bench::caption_sources`: the datasets are the benchmark's), renders and writes the images, then [`metadata`] lines
//! become `metadata.jsonl`, which `captioner/finetune.py` reads.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::render::View;

/// The extensions a Text2CAD mesh folder's models may have, in the order tried.
pub const MESH_EXTENSIONS: [&str; 5] = ["stl", "step", "stp", "obj", "glb"];

/// One model and the text that describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub id: String,
    /// File names are built from this (ids may hold slashes).
    pub name: String,
    pub text: String,
    pub model: PathBuf,
}

/// The train or validation side of the split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Validation,
}

/// One line of `metadata.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetadataLine {
    /// The image, relative to the dataset folder.
    pub file_name: String,
    pub text: String,
    pub id: String,
    pub view: String,
    pub split: Split,
}

/// A model id's side: the id's 64-bit FNV-1a hash, mixed, as a fraction of 2⁶⁴,
/// train below `train_share`. The same id always lands on the same side,
/// whatever the other ids, the order or the machine.
pub fn split_of(id: &str, train_share: f64) -> Split {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // FNV's high bits barely move between ids that differ in their last
    // characters (00000007, 00000008): mix them (SplitMix64's finaliser).
    hash ^= hash >> 30;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^= hash >> 27;
    hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^= hash >> 31;
    if (hash as f64 / 2f64.powi(64)) < train_share {
        Split::Train
    } else {
        Split::Validation
    }
}

/// The part a text describes, without a request for code in front of it:
/// "Write Python code using FreeCAD to create a pipe with a flange." becomes
/// "A pipe with a flange." A caption describes what a picture shows, so a
/// captioner trained on the request would learn to say "write python code".
/// Texts that are descriptions already (Text2CAD's) are left as they are.
pub fn description(text: &str) -> String {
    const VERBS: [&str; 8] = [
        "create", "make", "build", "model", "design", "generate", "produce", "draw",
    ];
    let trimmed = text.trim();
    let words: Vec<(usize, &str)> = trimmed
        .split_whitespace()
        .map(|w| (w.as_ptr() as usize - trimmed.as_ptr() as usize, w))
        .collect();
    let lower = |i: usize| {
        words[i]
            .1
            .trim_matches(|c: char| !c.is_alphanumeric())
            .to_lowercase()
    };
    let asks = !words.is_empty()
        && ["write", "generate", "give", "please"].contains(&lower(0).as_str())
        && (0..words.len().min(6)).any(|i| lower(i) == "code");
    if !asks {
        return trimmed.to_string();
    }
    let code = (0..words.len()).find(|&i| lower(i) == "code").unwrap_or(0);
    let Some(cut) = (code + 1..words.len().min(code + 8)).find(|&i| {
        let w = lower(i);
        w == "to" || w == "for" || w == "that"
    }) else {
        return trimmed.to_string();
    };
    let mut start = cut + 1;
    let verb = |w: String| {
        VERBS.contains(&w.strip_suffix('s').unwrap_or(&w)) || VERBS.contains(&w.as_str())
    };
    if start < words.len() && verb(lower(start)) {
        start += 1;
    }
    let Some(&(offset, _)) = words.get(start) else {
        return trimmed.to_string();
    };
    let rest = &trimmed[offset..];
    let mut chars = rest.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => trimmed.to_string(),
    }
}

/// The image file of a model's view, relative to the dataset folder.
pub fn image_name(source: &Source, view: View) -> String {
    format!("images/{}_{}.png", source.name, view.name())
}

/// The metadata lines of a model's views.
pub fn metadata(source: &Source, views: &[View], train_share: f64) -> Vec<MetadataLine> {
    let split = split_of(&source.id, train_share);
    views
        .iter()
        .map(|&view| MetadataLine {
            file_name: image_name(source, view),
            text: source.text.clone(),
            id: source.id.clone(),
            view: view.name().to_string(),
            split,
        })
        .collect()
}

/// Reads a `metadata.jsonl`; a line that is not one of [`metadata`]'s is an
/// error that names it.
pub fn read_metadata(path: &Path) -> anyhow::Result<Vec<MetadataLine>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let mut lines = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parsed = serde_json::from_str(line).map_err(|e| {
            anyhow::anyhow!(
                "{} line {}: not a captions-dataset line ({e}); each line needs file_name, text, id, view and split (train or validation), as `cadloop captions-dataset` writes them",
                path.display(),
                number + 1
            )
        })?;
        lines.push(parsed);
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_split_is_by_id_stable_and_near_the_share() {
        let ids: Vec<String> = (0..2000).map(|i| format!("{i:08}")).collect();
        let train = ids
            .iter()
            .filter(|id| split_of(id, 0.9) == Split::Train)
            .count();
        assert!((1740..=1860).contains(&train), "{train}");
        for id in &ids[..50] {
            assert_eq!(split_of(id, 0.9), split_of(id, 0.9));
        }
        assert!(ids.iter().all(|id| split_of(id, 1.0) == Split::Train));
        assert!(ids.iter().all(|id| split_of(id, 0.0) == Split::Validation));
    }

    #[test]
    fn a_request_for_code_is_cut_off_and_descriptions_stay() {
        let cases = [
            (
                "Write Python code using FreeCAD to create a pipe with a thin flange.",
                "A pipe with a thin flange.",
            ),
            (
                "write a python code using FreeCAD to create an extruded sketch of a circle.",
                "An extruded sketch of a circle.",
            ),
            (
                "Write Python code using FreeCAD for a 3D model that looks like a workbench.",
                "A 3D model that looks like a workbench.",
            ),
            (
                "Write Python code using FreeCAD to a 3D model. Start by creating a rectangle.",
                "A 3D model. Start by creating a rectangle.",
            ),
            (
                "Generate CadQuery code that makes a hexagonal nut",
                "A hexagonal nut",
            ),
            (
                "A rectangular plate with four holes.",
                "A rectangular plate with four holes.",
            ),
            (
                "Write a letter to the editor",
                "Write a letter to the editor",
            ),
            ("  ", ""),
        ];
        for (text, expected) in cases {
            assert_eq!(description(text), expected, "{text}");
        }
    }

    #[test]
    fn every_view_of_a_model_shares_its_text_id_and_side() {
        let source = Source {
            id: "0000/00001234".into(),
            name: "0000_00001234".into(),
            text: "a plate".into(),
            model: PathBuf::from("x.stl"),
        };
        let lines = metadata(&source, &View::ALL, 0.5);
        assert_eq!(lines.len(), 7);
        assert_eq!(lines[0].file_name, "images/0000_00001234_front.png");
        assert!(lines
            .iter()
            .all(|l| l.split == lines[0].split && l.id == source.id && l.text == "a plate"));
    }
}
