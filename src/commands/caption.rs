//! `cadloop caption IMAGE... --captioner DIR`: captions for images;
//! `cadloop caption --eval metadata.jsonl`: captions scored against texts.

use std::io::Write as _;
use std::path::Path;

use anyhow::{bail, Context};
use serde::Serialize;

use crate::caption::dataset::{self, MetadataLine, Split};
use crate::caption::{self, score, CaptionSettings, Captioner};
use crate::cli::{CaptionArgs, EvalSplit, GlobalArgs};
use crate::progress;

use super::settings::{no_captioner_hint, Settings};
use super::ExitStatus;

/// Images captioned at once in an evaluation: the loop's seven views.
const EVAL_CHUNK: usize = 7;

/// `cadloop caption IMAGE... --captioner DIR` or `cadloop caption --eval FILE`.
pub fn caption(global: &GlobalArgs, args: &CaptionArgs) -> anyhow::Result<ExitStatus> {
    let settings = Settings::read(global)?.caption(args.captioner.as_deref(), Some(args))?;
    let Some(settings) = settings else {
        bail!("no captioner model: {}", no_captioner_hint());
    };
    if let Some(metadata) = &args.eval {
        return evaluate(global, args, &settings, metadata);
    }
    // Every image is read before any work, so a bad one costs nothing.
    let images = args
        .images
        .iter()
        .map(|path| caption::load_image(path))
        .collect::<Result<Vec<_>, _>>()?;
    let loading = std::time::Instant::now();
    let mut captioner = Captioner::load(&settings.model, settings.threads)?;
    let loaded = loading.elapsed();
    let captioning = std::time::Instant::now();
    let captions = captioner.caption(&images, &settings.decoding)?;
    let caption_ms = captioning.elapsed().as_secs_f64() * 1e3;
    tracing::info!(
        images = images.len(),
        beams = settings.decoding.beams,
        caption_ms,
        load_ms = loaded.as_secs_f64() * 1e3,
        "captioned"
    );
    let mut stdout = std::io::stdout().lock();
    if args.json {
        let records: Vec<CaptionLine> = args
            .images
            .iter()
            .zip(&captions)
            .map(|(image, c)| CaptionLine {
                image,
                caption: &c.text,
                score: c.score,
                batch_ms: caption_ms,
            })
            .collect();
        serde_json::to_writer_pretty(&mut stdout, &records)?;
        writeln!(stdout)?;
    } else {
        for c in &captions {
            writeln!(stdout, "{}", c.text)?;
        }
    }
    Ok(ExitStatus::Success)
}

/// One image's caption, as `--json` prints it.
#[derive(Debug, Serialize)]
struct CaptionLine<'a> {
    image: &'a Path,
    caption: &'a str,
    /// Mean log-probability per generated token (≤ 0; closer to 0 is surer).
    score: f32,
    /// Milliseconds the captioner took for all the images at once:
    /// preprocessing and decoding, not reading the files or loading the model.
    batch_ms: f64,
}

/// One scored image of an evaluation.
#[derive(Debug, Serialize)]
struct Scored<'a> {
    file_name: &'a str,
    id: &'a str,
    view: &'a str,
    text: &'a str,
    caption: String,
}

/// What `--eval --json` prints.
#[derive(Debug, Serialize)]
struct Evaluation<'a> {
    metadata: &'a Path,
    captioner: &'a Path,
    split: &'static str,
    beams: usize,
    #[serde(flatten)]
    scores: score::Scores,
    captions: Vec<Scored<'a>>,
}

fn evaluate(
    global: &GlobalArgs,
    args: &CaptionArgs,
    settings: &CaptionSettings,
    metadata: &Path,
) -> anyhow::Result<ExitStatus> {
    let lines = dataset::read_metadata(metadata)?;
    let (split, side) = match args.split {
        EvalSplit::All => ("all", None),
        EvalSplit::Train => ("train", Some(Split::Train)),
        EvalSplit::Validation => ("validation", Some(Split::Validation)),
    };
    let chosen: Vec<&MetadataLine> = lines
        .iter()
        .filter(|line| side.is_none_or(|side| line.split == side))
        .collect();
    if chosen.is_empty() {
        bail!(
            "{} has no {split} images; choose another --split (train, validation, all) or make the set with a --split share that leaves some models to validate",
            metadata.display()
        );
    }
    let folder = metadata.parent().unwrap_or(Path::new("."));
    // Every image is read before any captioning, so a missing one costs nothing.
    let images = chosen
        .iter()
        .map(|line| caption::load_image(&folder.join(&line.file_name)))
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("an image that {} lists", metadata.display()))?;
    let mut captioner = Captioner::load(&settings.model, settings.threads)?;
    let bar = progress::counter(images.len() as u64, !global.quiet);
    let mut captions = Vec::with_capacity(images.len());
    for chunk in images.chunks(EVAL_CHUNK) {
        captions.extend(captioner.caption(chunk, &settings.decoding)?);
        if let Some(bar) = &bar {
            bar.inc(chunk.len() as u64);
        }
    }
    if let Some(bar) = &bar {
        progress::finish(bar);
    }
    let scores = score::score(
        captions
            .iter()
            .zip(&chosen)
            .map(|(c, line)| (c.text.as_str(), line.text.as_str())),
    );
    let evaluation = Evaluation {
        metadata,
        captioner: &settings.model,
        split,
        beams: settings.decoding.beams,
        scores,
        captions: chosen
            .iter()
            .zip(captions)
            .map(|(line, c)| Scored {
                file_name: &line.file_name,
                id: &line.id,
                view: &line.view,
                text: &line.text,
                caption: c.text,
            })
            .collect(),
    };
    print_evaluation(&evaluation, args.json)?;
    Ok(ExitStatus::Success)
}

fn print_evaluation(evaluation: &Evaluation, json: bool) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut stdout, evaluation)?;
        writeln!(stdout)?;
        return Ok(());
    }
    let s = &evaluation.scores;
    let share = |x: Option<f64>| x.map_or("n/a".to_string(), |x| format!("{x:.3}"));
    writeln!(
        stdout,
        "{} {} images of {}, captioned by {}",
        s.images,
        evaluation.split,
        evaluation.metadata.display(),
        evaluation.captioner.display()
    )?;
    writeln!(stdout, "BLEU-4           {:.2}", s.bleu4)?;
    writeln!(stdout, "ROUGE-L          {:.3}", s.rouge_l)?;
    writeln!(
        stdout,
        "CAD-word recall  {} ({} of the texts' {} shape words said)",
        share(s.cad_recall),
        s.cad_words_matched,
        s.cad_words_in_texts
    )?;
    writeln!(
        stdout,
        "CAD-word precision {} ({} shape words in the captions)",
        share(s.cad_precision),
        s.cad_words_in_captions
    )?;
    Ok(())
}
