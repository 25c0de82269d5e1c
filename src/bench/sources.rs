//! A benchmark dataset's references as a captioner's training sources:
//! each case's text (without the request for code) and its model file.

use std::path::Path;

use crate::batch::{self, InputFormat, InputOptions};
use crate::caption::dataset::{description, Source, MESH_EXTENSIONS};

use super::Variant;

/// Where a dataset's texts and models are: a CADPrompt folder (its prompts,
/// `variant` choosing which), a JSONL file with `reference`s, or a Text2CAD
/// CSV (`uid` and one text column per level, `column`) with its models in
/// `meshes` as `<uid>.<stl|step|stp|obj|glb>`. Cases without a model are
/// returned apart, with the reason.
pub fn caption_sources(
    dataset: &Path,
    variant: Variant,
    column: &str,
    meshes: Option<&Path>,
) -> anyhow::Result<(Vec<Source>, Vec<String>)> {
    let mut skipped = Vec::new();
    let mut found = Vec::new();
    if !dataset.is_dir() && InputFormat::of(dataset) == InputFormat::Csv {
        let Some(meshes) = meshes else {
            anyhow::bail!(
                "{}: a Text2CAD CSV holds no models; give their folder with --meshes DIR (<uid>.stl or .step)",
                dataset.display()
            );
        };
        let options = InputOptions {
            format: InputFormat::Csv,
            id_column: "uid".into(),
            prompt_column: column.into(),
        };
        let (items, problems) = batch::read_items(dataset, &options)?;
        skipped.extend(
            problems
                .iter()
                .map(|p| format!("line {}: {}", p.line, p.message)),
        );
        for item in items {
            let model = MESH_EXTENSIONS
                .iter()
                .map(|ext| meshes.join(format!("{}.{ext}", item.id)))
                .find(|p| p.is_file());
            match model {
                Some(model) => found.push(Source {
                    name: item.dir_name,
                    id: item.id,
                    text: description(&item.prompt),
                    model,
                }),
                None => skipped.push(format!("{}: no model in {}", item.id, meshes.display())),
            }
        }
        return Ok((found, skipped));
    }
    let (cases, problems) = super::load_dataset(dataset, variant)?;
    skipped.extend(
        problems
            .iter()
            .map(|p| format!("line {}: {}", p.line, p.message)),
    );
    for case in cases {
        match case.reference {
            Some(model) => found.push(Source {
                id: case.item.id,
                name: case.item.dir_name,
                text: description(&case.item.prompt),
                model,
            }),
            None => skipped.push(format!("{}: no reference model", case.item.id)),
        }
    }
    Ok((found, skipped))
}
