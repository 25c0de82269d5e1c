//! Teaching the captioner CAD, offline: a captions dataset from CADPrompt's
//! development cases (or parts FreeCAD makes when they are absent), the
//! tiny BLIP of captioner/make_tiny.py fine-tuned on it by
//! captioner/finetune.py (real torch, real transformers, from the project's
//! venv), the exported folder loaded by cadloop, and `cadloop caption --eval`
//! scoring it against the untrained model, with BLEU-4 checked against
//! sacrebleu.

mod common;

use std::path::Path;
use std::process::Output;

use common::python::{quantized_copy, run_python, script};
use common::{assert_exit, cadloop, read_json, text};
use serde_json::Value;

/// `cadloop caption --eval` of one captioner folder on one split, as JSON.
fn evaluate(dir: &Path, captioner: &Path, split: &str) -> Value {
    let out = cadloop(
        dir,
        &[
            "-q",
            "caption",
            "--eval",
            "set/metadata.jsonl",
            "--split",
            split,
            "--captioner",
            captioner.to_str().unwrap(),
            "--json",
        ],
    );
    assert_exit(&out, 0);
    serde_json::from_slice(&out.stdout).unwrap()
}

fn mean(values: &[Value]) -> f64 {
    values.iter().map(|v| v.as_f64().unwrap()).sum::<f64>() / values.len() as f64
}

/// sacrebleu's corpus BLEU of the evaluation's captions, on cadloop's words.
fn sacrebleu(dir: &Path, evaluation: &Value) -> f64 {
    let pairs = dir.join("pairs.json");
    std::fs::write(&pairs, evaluation["captions"].to_string()).unwrap();
    let code = "import json, re, sys, sacrebleu\n\
        rows = json.load(open(sys.argv[1]))\n\
        words = lambda t: ' '.join(re.findall(r'[^\\W_]+', t.lower()))\n\
        print(sacrebleu.corpus_bleu([words(r['caption']) for r in rows], [[words(r['text']) for r in rows]], tokenize='none').score)";
    let out = run_python(dir, &["-c", code, pairs.to_str().unwrap()]);
    assert_exit(&out, 0);
    text(&out.stdout).trim().parse().unwrap()
}

/// In `dir`: `set/`, the captions dataset of the reference dataset with
/// `views` (all or iso), and `tiny/`, the untrained tiny model as a
/// transformers checkpoint.
fn dataset_and_checkpoint(dir: &Path, views: &str) {
    let dataset = common::parts::reference_dataset(dir);
    let dataset = dataset.to_str().unwrap();
    let made = cadloop(
        dir,
        &[
            "-q",
            "captions-dataset",
            dataset,
            "--out",
            "set",
            "--views",
            views,
        ],
    );
    assert_exit(&made, 0);
    let make_tiny = script("make_tiny.py");
    let checkpoint = run_python(dir, &[make_tiny.to_str().unwrap(), "--checkpoint", "tiny"]);
    assert_exit(&checkpoint, 0);
}

/// finetune.py on `set/` from `tiny/` into `tuned/`, on one thread, with `extra` flags.
fn finetune(dir: &Path, extra: &[&str]) -> Output {
    let script = script("finetune.py");
    let mut args = vec![
        script.to_str().unwrap(),
        "set",
        "--model",
        "tiny",
        "--out",
        "tuned",
        "--lr",
        "3e-3",
        "--threads",
        "1",
    ];
    args.extend(extra);
    run_python(dir, &args)
}

#[test]
fn the_tiny_blip_learns_cad_texts_and_cadloop_loads_what_it_exported() {
    let dir = tempfile::tempdir().unwrap();
    dataset_and_checkpoint(dir.path(), "all");

    // Frozen vision (its embeddings computed once), the last epoch kept: the
    // tiny model's scaled random weights need about a thousand steps before
    // its greedy captions follow the texts; each step takes milliseconds.
    let trained = finetune(
        dir.path(),
        &[
            "--batch",
            "8",
            "--epochs",
            "2000",
            "--max-steps",
            "1500",
            "--max-text-tokens",
            "12",
            "--max-length",
            "20",
            "--keep",
            "last",
            "--eval-split",
            "train",
            "--quantize",
            "int8",
            "--cadloop",
            env!("CARGO_BIN_EXE_cadloop"),
        ],
    );
    assert_exit(&trained, 0);
    let tuned = dir.path().join("tuned");
    let record = read_json(&tuned.join("training.json"));

    // Training loss falls, within the first few dozen steps already.
    let steps = record["step_losses"].as_array().unwrap();
    assert_eq!(steps.len(), 1500);
    assert!(mean(&steps[40..50]) < 0.9 * mean(&steps[..10]), "{steps:?}");
    assert!(mean(&steps[1490..]) < 0.3 * mean(&steps[..10]), "{steps:?}");
    let epochs = record["epochs"].as_array().unwrap();
    assert!(epochs.last().unwrap()["kept"].as_bool().unwrap());
    assert!(epochs
        .iter()
        .all(|e| e["validation_loss"].as_f64().is_some()));
    let card = std::fs::read_to_string(tuned.join("MODEL_CARD.md")).unwrap();
    assert!(
        card.contains("| before |") && card.contains("| after |"),
        "{card}"
    );

    // The exported folders load in cadloop and caption the validation images.
    let validation = evaluate(dir.path(), &tuned, "validation");
    let int8 = evaluate(dir.path(), &tuned.join("int8"), "validation");
    let expected = record["data"]["validation_images"].as_u64().unwrap();
    assert!(expected > 0);
    for evaluation in [&validation, &int8] {
        assert_eq!(evaluation["images"].as_u64(), Some(expected));
        assert!(evaluation["captions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| !c["caption"].as_str().unwrap().trim().is_empty()));
    }

    // On the training images the tuned model scores above the untrained one
    // (the fixture: the same weights and caption length that make_tiny.py
    // exports), and the card's before/after figures are cadloop's own.
    let before = evaluate(dir.path(), &common::parts::tiny_captioner(), "train");
    let after = evaluate(dir.path(), &tuned, "train");
    for metric in ["bleu4", "rouge_l", "cad_recall"] {
        let (b, a) = (
            before[metric].as_f64().unwrap_or(0.0),
            after[metric].as_f64().unwrap(),
        );
        assert!(a > b, "{metric}: {b} untrained, {a} tuned");
    }
    assert!(after["rouge_l"].as_f64().unwrap() > 0.15, "{after}");
    let card_scores = &record["evaluation"];
    for metric in ["images", "bleu4", "rouge_l", "cad_recall"] {
        assert_eq!(card_scores["after"][metric], after[metric], "{metric}");
        assert_eq!(card_scores["before"][metric], before[metric], "{metric}");
    }
    let distinct: std::collections::BTreeSet<&str> = after["captions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["caption"].as_str().unwrap())
        .collect();
    assert!(
        distinct.len() > 3,
        "one caption for every model: {distinct:?}"
    );

    // cadloop's BLEU-4 is sacrebleu's on the same words.
    for evaluation in [&before, &after] {
        let theirs = sacrebleu(dir.path(), evaluation);
        let ours = evaluation["bleu4"].as_f64().unwrap();
        assert!(
            (theirs - ours).abs() < 1e-9,
            "sacrebleu {theirs}, cadloop {ours}"
        );
    }
}

#[test]
fn the_vision_encoder_trains_when_asked_and_bad_data_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    dataset_and_checkpoint(dir.path(), "iso");
    let trained = finetune(
        dir.path(),
        &[
            "--batch",
            "4",
            "--max-steps",
            "30",
            "--epochs",
            "30",
            "--train-vision",
            "--eval-split",
            "none",
        ],
    );
    assert_exit(&trained, 0);
    let record = read_json(&dir.path().join("tuned/training.json"));
    assert_eq!(record["settings"]["train_vision"], true);
    assert_eq!(record["evaluation"]["skipped"], "--eval-split none");
    let steps = record["step_losses"].as_array().unwrap();
    assert!(mean(&steps[25..]) < mean(&steps[..5]), "{steps:?}");
    // The vision encoder's weights moved; the untrained checkpoint's did not.
    let compare = "import sys, torch\n\
        from transformers import BlipForConditionalGeneration as B\n\
        a, b = (B.from_pretrained(p).vision_model.state_dict() for p in sys.argv[1:])\n\
        print(max((a[k] - b[k]).abs().max().item() for k in a))";
    let moved = run_python(dir.path(), &["-c", compare, "tiny", "tuned/checkpoint"]);
    assert_exit(&moved, 0);
    let moved: f64 = text(&moved.stdout).trim().parse().unwrap();
    assert!(moved > 1e-4, "{moved}");
    // The exported folder loads: caption the first image listed.
    let metadata = std::fs::read_to_string(dir.path().join("set/metadata.jsonl")).unwrap();
    let first: Value = serde_json::from_str(metadata.lines().next().unwrap()).unwrap();
    let image = format!("set/{}", first["file_name"].as_str().unwrap());
    let loads = cadloop(
        dir.path(),
        &["-q", "caption", "--captioner", "tuned", &image],
    );
    assert_exit(&loads, 0);
    assert!(!text(&loads.stdout).trim().is_empty());

    // A damaged metadata line is named, and nothing is written.
    let script = script("finetune.py");
    std::fs::create_dir_all(dir.path().join("bad")).unwrap();
    std::fs::write(
        dir.path().join("bad/metadata.jsonl"),
        "{\"file_name\": \"images/x.png\", \"text\": \"a plate\"}\n",
    )
    .unwrap();
    let refused = run_python(
        dir.path(),
        &[
            script.to_str().unwrap(),
            "bad",
            "--model",
            "tiny",
            "--out",
            "never",
        ],
    );
    // SystemExit with a message: exit status 1.
    assert_exit(&refused, 1);
    let stderr = text(&refused.stderr);
    assert!(
        stderr.contains("line 1") && stderr.contains("split"),
        "{stderr}"
    );
    assert!(!dir.path().join("never").exists());
    // So is an --out folder holding someone else's files.
    std::fs::create_dir_all(dir.path().join("mine")).unwrap();
    std::fs::write(dir.path().join("mine/notes.txt"), "keep me").unwrap();
    let refused = run_python(
        dir.path(),
        &[
            script.to_str().unwrap(),
            "set",
            "--model",
            "tiny",
            "--out",
            "mine",
        ],
    );
    // A usage error, as argparse reports them: exit status 2.
    assert_exit(&refused, 2);
    assert!(text(&refused.stderr).contains("did not write"));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("mine/notes.txt")).unwrap(),
        "keep me"
    );
}

#[test]
fn the_benchmark_measures_how_far_int8_agrees_with_fp32_on_every_cpu_class() {
    // The tiny model quantised as export.py does (weights within ±64), and
    // as exports did before (full range), whose pairs of products saturate
    // 16-bit sums on AVX2 and on AVX-512 without VNNI unless run as cadloop
    // runs them.
    let dir = tempfile::tempdir().unwrap();
    let fixture = common::parts::tiny_captioner();
    let headroom = dir.path().join("int8");
    let full_range = dir.path().join("int8-full-range");
    quantized_copy(dir.path(), &fixture, &headroom, false);
    quantized_copy(dir.path(), &fixture, &full_range, true);
    let agreement = |fp32: &Path, int8: &Path, class: &str| -> Value {
        let bench = script("bench.py");
        let out = run_python(
            dir.path(),
            &[
                bench.to_str().unwrap(),
                "--agreement",
                fp32.to_str().unwrap(),
                int8.to_str().unwrap(),
                "--threads",
                "1",
                "--json",
                "--cpu",
                class,
            ],
        );
        assert_exit(&out, 0);
        let figures: Value =
            serde_json::from_str(text(&out.stdout).lines().last().unwrap()).unwrap();
        assert_eq!(figures["cpu"], class);
        figures
    };
    for class in common::cpu::classes() {
        for int8 in [&headroom, &full_range] {
            let figures = agreement(&fixture, int8, class);
            // Steps along fp32's greedy captions of the seven views.
            assert!(figures["steps"].as_u64().unwrap() > 7, "{figures}");
            // The tiny model's next-token margins are all a few hundredths of
            // a logit, so its top-1 agreement counts near-ties; the logits
            // themselves must stay close on every CPU class.
            let cosine = figures["logit_cosine_min"].as_f64().unwrap();
            assert!(
                cosine > 0.999 && cosine < 1.0,
                "{} as {class}: {figures}",
                int8.display()
            );
        }
    }
    // The same folder against itself agrees exactly: the measure can tell.
    let same = agreement(&fixture, &fixture, "native");
    assert_eq!(same["top1_agreement"], 1.0);
    assert_eq!(same["same_greedy_caption"], "7/7");
}
