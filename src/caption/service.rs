//! The captioner as a service: one thread owns the loaded model and takes
//! requests over a channel, one at a time in the order they came; callers
//! await the reply. Runs share one service, so captions never run side by
//! side (each already uses every core) and the model is loaded once.
//!
//! Captions are a function of the image and the decoding settings only, so
//! an image byte-identical to one captioned lately (an attempt that built
//! the same solid as an earlier one, a tweak back to earlier values) takes
//! that caption instead of a pass through the model.

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use image::RgbImage;
use tokio::sync::oneshot;

use super::{Caption, CaptionError, CaptionSettings, Captioner, Decoding};

/// A loaded model behind its own thread.
pub struct CaptionService {
    dir: PathBuf,
    decoding: Decoding,
    requests: mpsc::Sender<Request>,
    reused: Arc<AtomicUsize>,
}

/// How many recent captions are kept for reuse: a few attempts' seven views.
const REMEMBERED: usize = 64;

/// Recently captioned images with their captions, oldest first.
#[derive(Default)]
struct Remembered {
    entries: VecDeque<(u64, Decoding, RgbImage, Caption)>,
}

impl Remembered {
    fn key(image: &RgbImage) -> u64 {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        image.dimensions().hash(&mut hasher);
        image.as_raw().hash(&mut hasher);
        hasher.finish()
    }

    /// The caption of an image equal byte for byte, under the same settings.
    fn find(&self, key: u64, settings: &Decoding, image: &RgbImage) -> Option<Caption> {
        self.entries
            .iter()
            .find(|(k, s, i, _)| *k == key && s == settings && i == image)
            .map(|(_, _, _, caption)| caption.clone())
    }

    fn keep(&mut self, key: u64, settings: Decoding, image: RgbImage, caption: Caption) {
        if self.entries.len() == REMEMBERED {
            self.entries.pop_front();
        }
        self.entries.push_back((key, settings, image, caption));
    }
}

struct Request {
    images: Vec<RgbImage>,
    decoding: Decoding,
    reply: oneshot::Sender<Result<Vec<Caption>, CaptionError>>,
    /// The caller's span, so the model's logs sit under the attempt they serve.
    span: tracing::Span,
}

impl CaptionService {
    /// Loads the model on a new thread (`settings.threads`: each ONNX
    /// session's intra-op thread count), which then serves requests until the
    /// service is dropped.
    pub async fn start(settings: CaptionSettings) -> Result<CaptionService, CaptionError> {
        let CaptionSettings {
            model: dir,
            threads,
            decoding,
        } = settings;
        let (requests, inbox) = mpsc::channel::<Request>();
        let (loaded, load_result) = oneshot::channel();
        let model_dir = dir.clone();
        let reused = Arc::new(AtomicUsize::new(0));
        let counter = reused.clone();
        std::thread::Builder::new()
            .name("captioner".into())
            .spawn(move || serve(&model_dir, threads, inbox, loaded, &counter))
            .map_err(CaptionError::Thread)?;
        load_result.await.map_err(|_| CaptionError::Stopped)??;
        Ok(CaptionService {
            dir,
            decoding,
            requests,
            reused,
        })
    }

    /// Captions `images` with the service's decoding settings, in order.
    pub async fn caption(&self, images: Vec<RgbImage>) -> Result<Vec<Caption>, CaptionError> {
        let (reply, answer) = oneshot::channel();
        let request = Request {
            images,
            decoding: self.decoding.clone(),
            reply,
            span: tracing::Span::current(),
        };
        self.requests
            .send(request)
            .map_err(|_| CaptionError::Stopped)?;
        answer.await.map_err(|_| CaptionError::Stopped)?
    }

    /// Images answered from an earlier caption so far, not by the model.
    pub fn reused(&self) -> usize {
        self.reused.load(Ordering::Relaxed)
    }

    /// The model folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How the captioner decodes: beams, length, repetition penalty, prefix.
    pub fn decoding(&self) -> &Decoding {
        &self.decoding
    }
}

/// The service thread: load, say how it went, then answer until the channel closes.
fn serve(
    dir: &Path,
    threads: usize,
    inbox: mpsc::Receiver<Request>,
    loaded: oneshot::Sender<Result<(), CaptionError>>,
    reused: &AtomicUsize,
) {
    let mut model = match Captioner::load(dir, threads) {
        Ok(model) => {
            let _ = loaded.send(Ok(()));
            model
        }
        Err(err) => {
            let _ = loaded.send(Err(err));
            return;
        }
    };
    let mut remembered = Remembered::default();
    while let Ok(request) = inbox.recv() {
        let _entered = request.span.enter();
        let captions = caption_new(
            &mut model,
            &mut remembered,
            request.images,
            &request.decoding,
        );
        if let Ok((_, count)) = &captions {
            reused.fetch_add(*count, Ordering::Relaxed);
        }
        // The caller may have stopped waiting (a signal stopped its run).
        let _ = request.reply.send(captions.map(|(c, _)| c));
    }
}

/// Captions the images not captioned lately, in one batch, and takes the
/// others' captions from `remembered`; gives the captions in order and how
/// many were reused.
fn caption_new(
    model: &mut Captioner,
    remembered: &mut Remembered,
    images: Vec<RgbImage>,
    decoding: &Decoding,
) -> Result<(Vec<Caption>, usize), CaptionError> {
    let keys: Vec<u64> = images.iter().map(Remembered::key).collect();
    let mut found: Vec<Option<Caption>> = images
        .iter()
        .zip(&keys)
        .map(|(image, &key)| remembered.find(key, decoding, image))
        .collect();
    let reused = found.iter().filter(|c| c.is_some()).count();
    // The images not found go to the model, moved (they are kept afterwards).
    let (missing, batch): (Vec<usize>, Vec<RgbImage>) = images
        .into_iter()
        .enumerate()
        .filter(|(i, _)| found[*i].is_none())
        .unzip();
    if !missing.is_empty() {
        let fresh = model.caption(&batch, decoding)?;
        for ((&i, caption), image) in missing.iter().zip(fresh).zip(batch) {
            remembered.keep(keys[i], decoding.clone(), image, caption.clone());
            found[i] = Some(caption);
        }
    }
    if reused > 0 {
        tracing::info!(
            reused,
            captioned = missing.len(),
            "captions of identical views reused"
        );
    }
    Ok((found.into_iter().flatten().collect(), reused))
}
