//! The captioner on the committed tiny BLIP (made by captioner/make_tiny.py):
//! preprocessing and decoding against transformers' reference outputs, with
//! the real ONNX Runtime library from the project's venv.

mod common;

use std::path::{Path, PathBuf};

use cadloop::caption::{self, CaptionError, Captioner, Decoding};
use common::assert_exit;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-blip")
}

fn reference() -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(fixture().join("reference.json")).unwrap()).unwrap()
}

fn load() -> Captioner {
    Captioner::load(&fixture(), 1)
        .expect("the fixture loads (is the venv with onnxruntime set up?)")
}

fn images() -> Vec<image::RgbImage> {
    ["test.png", "green.png"]
        .iter()
        .map(|name| caption::load_image(&fixture().join(name)).unwrap())
        .collect()
}

#[test]
fn preprocessing_matches_transformers_within_one_8_bit_level() {
    let model = load();
    let m = model.manifest().clone();
    let image = caption::load_image(&fixture().join("test.png")).unwrap();
    assert_eq!(
        image.dimensions(),
        (500, 300),
        "the test image needs resizing"
    );
    let ours = caption::preprocess(&image, m.image_size, m.mean, m.std, m.rescale);
    let raw = std::fs::read(fixture().join("pixels.f32")).unwrap();
    let theirs: Vec<f32> = raw
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(ours.len(), theirs.len());
    let plane = (m.image_size * m.image_size) as usize;
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        let level = 1.0 / 255.0 / m.std[i / plane];
        assert!(
            (a - b).abs() <= level + 1e-5,
            "value {i}: {a} vs {b} (one level is {level})"
        );
    }
}

#[test]
fn decoding_matches_transformers_token_for_token() {
    let mut model = load();
    let reference = reference();
    let images = images();
    for (name, case) in reference["cases"].as_object().unwrap() {
        let decoding = Decoding {
            beams: case["beams"].as_u64().unwrap() as usize,
            max_length: Some(case["max_length"].as_u64().unwrap() as usize),
            repetition_penalty: case["repetition_penalty"].as_f64().unwrap() as f32,
            prefix: case["prefix"].as_str().map(String::from),
        };
        let captions = model.caption(&images, &decoding).unwrap();
        for (i, caption) in captions.iter().enumerate() {
            let expected: Vec<u32> = case["ids"][i]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            assert_eq!(caption.ids, expected, "{name}, image {i}");
            assert!(
                caption.score <= 0.0 && caption.score.is_finite(),
                "{name}: score {}",
                caption.score
            );
        }
    }
}

#[test]
fn a_batch_and_one_image_at_a_time_agree() {
    let mut model = load();
    let images = images();
    let decoding = Decoding {
        repetition_penalty: 1.5,
        ..Decoding::default()
    };
    let batched = model.caption(&images, &decoding).unwrap();
    for (i, image) in images.iter().enumerate() {
        let alone = model
            .caption(std::slice::from_ref(image), &decoding)
            .unwrap();
        assert_eq!(alone[0].ids, batched[i].ids, "image {i}");
        assert!((alone[0].score - batched[i].score).abs() < 1e-4);
    }
    assert_ne!(
        batched[0].ids, batched[1].ids,
        "different images, different captions"
    );
    assert!(!batched[0].text.is_empty());
}

#[test]
fn broken_models_and_images_are_named_with_a_fix() {
    let missing = Captioner::load(Path::new("/nonexistent/captioner"), 1)
        .err()
        .unwrap();
    assert!(matches!(missing, CaptionError::NoModel(_)), "{missing}");
    assert!(missing.to_string().contains("captioner/export.py"));

    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    std::fs::write(dir.path().join("decoder_step.onnx"), b"not a graph").unwrap();
    let corrupt = Captioner::load(dir.path(), 1).err().unwrap();
    assert!(matches!(corrupt, CaptionError::Graph { .. }), "{corrupt}");
    assert!(
        corrupt.to_string().contains("decoder_step.onnx"),
        "{corrupt}"
    );

    std::fs::remove_file(dir.path().join("decoder_step.onnx")).unwrap();
    let gone = Captioner::load(dir.path(), 1).err().unwrap();
    assert!(matches!(gone, CaptionError::MissingFile(_)), "{gone}");

    std::fs::copy(
        fixture().join("decoder_init.onnx"),
        dir.path().join("decoder_step.onnx"),
    )
    .unwrap();
    let swapped = Captioner::load(dir.path(), 1).err().unwrap();
    assert!(
        matches!(swapped, CaptionError::Mismatch { .. }),
        "{swapped}"
    );

    std::fs::copy(
        fixture().join("decoder_step.onnx"),
        dir.path().join("decoder_step.onnx"),
    )
    .unwrap();
    let manifest_path = dir.path().join("cadloop-captioner.json");
    let manifest = std::fs::read_to_string(&manifest_path).unwrap();
    std::fs::write(
        &manifest_path,
        manifest.replace("\"image_size\": 384", "\"image_size\": 224"),
    )
    .unwrap();
    let sized = Captioner::load(dir.path(), 1).err().unwrap();
    assert!(matches!(sized, CaptionError::Mismatch { .. }), "{sized}");
    assert!(sized.to_string().contains("224"), "{sized}");

    std::fs::write(dir.path().join("cadloop-captioner.json"), "{\"format\": 1}").unwrap();
    let manifest = Captioner::load(dir.path(), 1).err().unwrap();
    assert!(
        manifest.to_string().contains("cadloop-captioner.json"),
        "{manifest}"
    );

    std::fs::write(dir.path().join("broken.png"), b"\x89PNG\r\n\x1a\nnope").unwrap();
    let unreadable = caption::load_image(&dir.path().join("broken.png"))
        .err()
        .unwrap();
    assert!(
        matches!(unreadable, CaptionError::Image { .. }),
        "{unreadable}"
    );

    let huge = dir.path().join("huge.png");
    std::fs::write(&huge, png_header(10_000, 10_000)).unwrap();
    let too_large = caption::load_image(&huge).err().unwrap();
    assert!(
        matches!(too_large, CaptionError::ImageTooLarge { width: 10_000, .. }),
        "{too_large}"
    );
}

/// A PNG signature and header claiming `width` × `height` (no pixel data).
fn png_header(width: u32, height: u32) -> Vec<u8> {
    let mut chunk = b"IHDR".to_vec();
    chunk.extend(width.to_be_bytes());
    chunk.extend(height.to_be_bytes());
    chunk.extend([8, 2, 0, 0, 0]);
    let crc = crc32fast::hash(&chunk);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(13u32.to_be_bytes());
    png.extend(&chunk);
    png.extend(crc.to_be_bytes());
    for name in [&b"IDAT"[..], &b"IEND"[..]] {
        png.extend(0u32.to_be_bytes());
        png.extend(name);
        png.extend(crc32fast::hash(name).to_be_bytes());
    }
    png
}

fn cadloop(args: &[&str]) -> std::process::Output {
    common::cadloop(&fixture(), args)
}

#[test]
fn the_caption_command_prints_json_in_input_order_and_refuses_bad_input() {
    let dir = fixture();
    let (test, green) = (dir.join("test.png"), dir.join("green.png"));
    let args = |first: &Path, second: &Path| {
        vec![
            "caption".to_string(),
            first.display().to_string(),
            second.display().to_string(),
            "--captioner".into(),
            dir.display().to_string(),
            "--beams".into(),
            "1".into(),
            "--repetition-penalty".into(),
            "1.5".into(),
            "--json".into(),
        ]
    };
    let run = |a: Vec<String>| {
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        let out = cadloop(&refs);
        assert_exit(&out, 0);
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let forward = run(args(&test, &green));
    let backward = run(args(&green, &test));
    assert_eq!(forward[0]["image"], test.display().to_string());
    assert_eq!(forward[0]["caption"], backward[1]["caption"]);
    assert_eq!(forward[1]["caption"], backward[0]["caption"]);
    assert_ne!(forward[0]["caption"], forward[1]["caption"]);
    assert!(forward[0]["score"].as_f64().unwrap() < 0.0);
    let batch_ms = forward[0]["batch_ms"].as_f64().unwrap();
    assert!(batch_ms > 0.0, "the batch's time is given: {batch_ms}");
    assert_eq!(
        forward[1]["batch_ms"], forward[0]["batch_ms"],
        "one batch, one time"
    );

    let out = cadloop(&["caption", test.to_str().unwrap()]);
    assert_exit(&out, 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--captioner"));

    let out = cadloop(&[
        "caption",
        test.to_str().unwrap(),
        "/nonexistent.png",
        "--captioner",
        dir.to_str().unwrap(),
    ]);
    assert_exit(&out, 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.png"));
    assert!(
        out.stdout.is_empty(),
        "nothing is captioned when one image is bad"
    );

    let out = cadloop(&[
        "caption",
        test.to_str().unwrap(),
        "--captioner",
        dir.to_str().unwrap(),
        "--beams",
        "0",
    ]);
    assert_exit(&out, 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("beams"));
}

#[test]
fn caption_eval_scores_a_split_and_names_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path();
    std::fs::create_dir(set.join("images")).unwrap();
    for name in ["test.png", "green.png"] {
        std::fs::copy(fixture().join(name), set.join("images").join(name)).unwrap();
    }
    let line = |file: &str, text: &str, split: &str| {
        serde_json::json!({"file_name": format!("images/{file}"), "text": text,
            "id": file, "view": "iso", "split": split})
        .to_string()
    };
    let metadata = set.join("metadata.jsonl");
    std::fs::write(
        &metadata,
        [
            line("test.png", "a plate with a hole", "train"),
            line("green.png", "a green square", "validation"),
        ]
        .join("\n"),
    )
    .unwrap();
    let model = fixture();
    let eval = |extra: &[&str]| {
        let mut args = vec![
            "caption",
            "--eval",
            metadata.to_str().unwrap(),
            "--captioner",
            model.to_str().unwrap(),
            "--beams",
            "1",
            "--repetition-penalty",
            "1.5",
        ];
        args.extend(extra);
        cadloop(&args)
    };
    // Each split's images, captioned as `cadloop caption` captions them.
    let out = eval(&["--split", "all", "--json"]);
    assert_exit(&out, 0);
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(all["images"], 2);
    let one = cadloop(&[
        "caption",
        set.join("images/test.png").to_str().unwrap(),
        "--captioner",
        fixture().to_str().unwrap(),
        "--beams",
        "1",
        "--repetition-penalty",
        "1.5",
    ]);
    assert_eq!(
        all["captions"][0]["caption"].as_str().unwrap(),
        String::from_utf8_lossy(&one.stdout).trim()
    );
    assert_eq!(all["captions"][1]["text"], "a green square");
    let expected = caption::score::score([
        (
            all["captions"][0]["caption"].as_str().unwrap(),
            "a plate with a hole",
        ),
        (
            all["captions"][1]["caption"].as_str().unwrap(),
            "a green square",
        ),
    ]);
    assert_eq!(all["rouge_l"].as_f64().unwrap(), expected.rouge_l);
    assert_eq!(all["cad_words_in_texts"], 3); // plate, hole; square
    let out = eval(&["--split", "train"]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.starts_with("1 train images") && shown.contains("BLEU-4"),
        "{shown}"
    );
    assert!(shown.contains("CAD-word recall"), "{shown}");

    // A line that is not the dataset's, a missing image, an empty split.
    std::fs::write(
        &metadata,
        format!(
            "{}\n{{\"file_name\": \"x.png\"}}\n",
            line("test.png", "a plate", "train")
        ),
    )
    .unwrap();
    let out = eval(&[]);
    assert_exit(&out, 2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 2") && err.contains("captions-dataset"),
        "{err}"
    );
    std::fs::write(&metadata, line("gone.png", "a plate", "validation")).unwrap();
    let out = eval(&[]);
    assert_exit(&out, 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("gone.png"));
    std::fs::write(&metadata, line("test.png", "a plate", "train")).unwrap();
    let out = eval(&[]);
    assert_exit(&out, 2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no validation images") && err.contains("--split"),
        "{err}"
    );
    // --split belongs to --eval, and --eval takes no images.
    let out = cadloop(&["caption", "x.png", "--split", "train"]);
    assert_exit(&out, 2);
}

#[test]
fn a_format_1_folder_of_the_same_weights_gives_the_same_captions() {
    // tests/fixtures/tiny-blip-format1: the fixture's weights as format 1
    // exported them (stacked caches, cross keys/values copied per beam),
    // kept so that folders exported before format 2 still load and agree.
    let old = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-blip-format1");
    let mut old = Captioner::load(&old, 1).unwrap();
    assert_eq!(old.manifest().format, 1);
    let mut new = load();
    assert_eq!(new.manifest().format, 2);
    for beams in [1, 3] {
        let decoding = Decoding {
            beams,
            repetition_penalty: 1.5,
            max_length: Some(12),
            ..Decoding::default()
        };
        let a = old.caption(&images(), &decoding).unwrap();
        let b = new.caption(&images(), &decoding).unwrap();
        for (a, b) in a.iter().zip(&b) {
            assert_eq!(a.ids, b.ids, "beams {beams}");
            assert!((a.score - b.score).abs() < 1e-4, "beams {beams}");
        }
    }
}

#[tokio::test]
async fn the_service_reuses_captions_of_byte_identical_images_only() {
    let service = caption::CaptionService::start(caption::CaptionSettings {
        model: fixture(),
        threads: 1,
        decoding: Decoding {
            beams: 1,
            repetition_penalty: 1.5,
            ..Decoding::default()
        },
    })
    .await
    .unwrap();
    let [test, green]: [image::RgbImage; 2] = images().try_into().unwrap();
    let first = service
        .caption(vec![test.clone(), green.clone()])
        .await
        .unwrap();
    assert_eq!(service.reused(), 0);
    let again = service
        .caption(vec![green.clone(), test.clone(), test.clone()])
        .await
        .unwrap();
    assert_eq!(service.reused(), 3);
    assert_eq!(again[0], first[1]);
    assert_eq!(again[1], first[0]);
    assert_eq!(again[2], first[0]);
    // One pixel differs: the model captions it, and says what it says.
    let mut touched = test.clone();
    touched.get_pixel_mut(10, 10).0 = [0, 0, 0];
    let fresh = service.caption(vec![touched.clone()]).await.unwrap();
    assert_eq!(service.reused(), 3);
    let direct = load()
        .caption(&[touched], &service.decoding().clone())
        .unwrap();
    assert_eq!(fresh, direct);
}
