//! `cadloop caption IMAGE... --captioner DIR`: captions for images.

use std::io::Write as _;

use anyhow::bail;

use crate::caption;
use crate::cli::{CaptionArgs, GlobalArgs};
use crate::config;

use super::ExitStatus;

/// `cadloop caption IMAGE... --captioner DIR`.
pub fn caption(global: &GlobalArgs, args: &CaptionArgs) -> anyhow::Result<ExitStatus> {
    let (file, _) = config::load_file(global.config.as_deref())?;
    let decoding = config::decoding(
        &file.captioner,
        args.beams,
        args.max_length,
        args.repetition_penalty,
        args.prefix.clone(),
    )?;
    let Some(dir) = config::captioner_dir(args.captioner.as_deref(), &file.captioner) else {
        bail!(
            "no captioner model: give --captioner DIR (or set CADLOOP_CAPTIONER); \
             make a model folder with captioner/export.py (see captioner/README.md)"
        );
    };
    // Every image is read before any work, so a bad one costs nothing.
    let images = args
        .images
        .iter()
        .map(|path| caption::load_image(path))
        .collect::<Result<Vec<_>, _>>()?;
    let threads = file
        .captioner
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let loading = std::time::Instant::now();
    let mut captioner = caption::Captioner::load(&dir, threads)?;
    let loaded = loading.elapsed();
    let captioning = std::time::Instant::now();
    let captions = captioner.caption(&images, &decoding)?;
    tracing::info!(
        images = images.len(),
        beams = decoding.beams,
        caption_ms = captioning.elapsed().as_secs_f64() * 1e3,
        load_ms = loaded.as_secs_f64() * 1e3,
        "captioned"
    );
    let mut stdout = std::io::stdout().lock();
    if args.json {
        let records: Vec<serde_json::Value> = args
            .images
            .iter()
            .zip(&captions)
            .map(
                |(path, c)| serde_json::json!({"image": path, "caption": c.text, "score": c.score}),
            )
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
