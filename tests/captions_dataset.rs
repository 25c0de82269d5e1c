//! `cadloop captions-dataset`: references rendered as the loop renders
//! attempts, paired with their texts, split by model id; from CADPrompt's
//! development cases (read in place when this machine has them, else parts
//! FreeCAD makes) and from a Text2CAD CSV with a folder of STEP models.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::{assert_exit, cadloop, refusal, text};
use serde_json::Value;

fn metadata(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("metadata.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `cadloop captions-dataset DATASET --out OUT EXTRA…` in `dir`.
fn captions_dataset(dir: &Path, dataset: &Path, out: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["captions-dataset", dataset.to_str().unwrap(), "--out", out];
    args.extend(extra);
    cadloop(dir, &args)
}

#[test]
fn a_dataset_becomes_images_with_texts_split_by_model() {
    let dir = tempfile::tempdir().unwrap();
    let dataset = common::parts::reference_dataset(dir.path());
    let (cases, _) =
        cadloop::bench::load_dataset(&dataset, cadloop::bench::Variant::Plain).unwrap();
    let out = captions_dataset(dir.path(), &dataset, "set", &[]);
    assert_exit(&out, 0);
    assert!(
        text(&out.stdout).contains(&format!("{} rendered now", cases.len())),
        "{}",
        text(&out.stdout)
    );
    let set = dir.path().join("set");
    let lines = metadata(&set);
    assert_eq!(lines.len(), 7 * cases.len());
    let mut sides: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in &lines {
        let image = image::open(set.join(line["file_name"].as_str().unwrap())).unwrap();
        assert_eq!((image.width(), image.height()), (384, 384));
        let case = cases.iter().find(|c| c.item.id == line["id"]).unwrap();
        // The text is the prompt without its request for code.
        let text = line["text"].as_str().unwrap();
        assert_eq!(
            text,
            cadloop::caption::dataset::description(&case.item.prompt)
        );
        assert!(!text.to_lowercase().contains("python code"), "{text}");
        sides
            .entry(line["id"].as_str().unwrap().into())
            .or_default()
            .insert(line["split"].as_str().unwrap().into());
    }
    assert!(
        sides.values().all(|s| s.len() == 1),
        "a model on both sides: {sides:?}"
    );
    let train = sides.values().filter(|s| s.contains("train")).count();
    assert!(
        train > 0 && train < cases.len() || cases.len() < 4,
        "{sides:?}"
    );

    // Run again: nothing is rendered twice, and the split is the same.
    let again = captions_dataset(dir.path(), &dataset, "set", &[]);
    assert_exit(&again, 0);
    assert!(
        text(&again.stdout).contains("(0 rendered now"),
        "{}",
        text(&again.stdout)
    );
    assert_eq!(metadata(&set), lines);

    // One model at a time gives the same lines in the same order, and the
    // same images byte for byte, as several at once (the default: one per core).
    let one = captions_dataset(dir.path(), &dataset, "one", &["--jobs", "1"]);
    assert_exit(&one, 0);
    let single = dir.path().join("one");
    assert_eq!(metadata(&single), lines);
    for line in &lines {
        let name = line["file_name"].as_str().unwrap();
        assert!(
            std::fs::read(set.join(name)).unwrap() == std::fs::read(single.join(name)).unwrap(),
            "{name}"
        );
    }

    // The isometric view alone, half of the models for training.
    let out = captions_dataset(
        dir.path(),
        &dataset,
        "iso",
        &["--views", "iso", "--split", "0.5"],
    );
    assert_exit(&out, 0);
    let iso = metadata(&dir.path().join("iso"));
    assert_eq!(iso.len(), cases.len());
    assert!(iso.iter().all(|l| l["view"] == "iso"));

    let dataset = dataset.to_str().unwrap();
    for (flags, said) in [
        (["--split", "1.5"], "--split 1.5 is not a share"),
        (["--jobs", "0"], "--jobs 0"),
    ] {
        let mut args = vec!["captions-dataset", dataset, "--out", "x"];
        args.extend(flags);
        let stderr = refusal(dir.path(), &args);
        assert!(stderr.contains(said), "{stderr}");
    }
    assert!(!dir.path().join("x").exists());
}

#[test]
fn a_text2cad_csv_pairs_each_uid_with_its_model_and_chosen_level() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("disc.py"),
        "import Part\nresult = Part.makeCylinder(20, 4)\n",
    )
    .unwrap();
    assert_exit(
        &cadloop(dir.path(), &["exec", "disc.py", "--out", "disc"]),
        0,
    );
    let meshes = dir.path().join("meshes/0000");
    std::fs::create_dir_all(&meshes).unwrap();
    std::fs::copy(
        dir.path().join("disc/model.step"),
        meshes.join("00000007.step"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("annotations.csv"),
        "uid,abstract,beginner,intermediate,expert\n\
         0000/00000007,a disc,a flat round disc,a disc 40 across,Draw a circle of radius 20 and extrude 4\n\
         0000/00000008,a plate,a plate,a plate,a plate\n",
    )
    .unwrap();
    let out = cadloop(
        dir.path(),
        &[
            "captions-dataset",
            "annotations.csv",
            "--meshes",
            "meshes",
            "--out",
            "set",
            "--level",
            "beginner",
        ],
    );
    assert_exit(&out, 0);
    assert!(
        text(&out.stdout).contains("1 left out"),
        "{}",
        text(&out.stdout)
    );
    let lines = metadata(&dir.path().join("set"));
    assert_eq!(lines.len(), 7);
    assert!(lines
        .iter()
        .all(|l| l["id"] == "0000/00000007" && l["text"] == "a flat round disc"));
    assert!(dir
        .path()
        .join("set")
        .join(lines[6]["file_name"].as_str().unwrap())
        .is_file());

    let stderr = refusal(
        dir.path(),
        &["captions-dataset", "annotations.csv", "--out", "set2"],
    );
    assert!(stderr.contains("--meshes DIR"), "{stderr}");
    assert!(!dir.path().join("set2").exists(), "nothing is written");
}
