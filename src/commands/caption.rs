//! `cadloop caption IMAGE... --captioner DIR`: captions for images.

use std::io::Write as _;

use anyhow::bail;

use crate::caption;
use crate::cli::{CaptionArgs, GlobalArgs};

use super::settings::{no_captioner_hint, Settings};
use super::ExitStatus;

/// `cadloop caption IMAGE... --captioner DIR`.
pub fn caption(global: &GlobalArgs, args: &CaptionArgs) -> anyhow::Result<ExitStatus> {
    let settings = Settings::read(global)?.caption(args.captioner.as_deref(), Some(args))?;
    let Some(settings) = settings else {
        bail!("no captioner model: {}", no_captioner_hint());
    };
    // Every image is read before any work, so a bad one costs nothing.
    let images = args
        .images
        .iter()
        .map(|path| caption::load_image(path))
        .collect::<Result<Vec<_>, _>>()?;
    let loading = std::time::Instant::now();
    let mut captioner = caption::Captioner::load(&settings.model, settings.threads)?;
    let loaded = loading.elapsed();
    let captioning = std::time::Instant::now();
    let captions = captioner.caption(&images, &settings.decoding)?;
    tracing::info!(
        images = images.len(),
        beams = settings.decoding.beams,
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
