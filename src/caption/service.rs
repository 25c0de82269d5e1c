//! The captioner as a service: one thread owns the loaded model and takes
//! requests over a channel, one at a time in the order they came; callers
//! await the reply. Runs share one service, so captions never run side by
//! side (each already uses every core) and the model is loaded once.

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use image::RgbImage;
use tokio::sync::oneshot;

use super::{Caption, CaptionError, CaptionSettings, Captioner, Decoding};

/// A loaded model behind its own thread.
pub struct CaptionService {
    dir: PathBuf,
    decoding: Decoding,
    requests: mpsc::Sender<Request>,
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
        std::thread::Builder::new()
            .name("captioner".into())
            .spawn(move || serve(&model_dir, threads, inbox, loaded))
            .map_err(CaptionError::Thread)?;
        load_result.await.map_err(|_| CaptionError::Stopped)??;
        Ok(CaptionService {
            dir,
            decoding,
            requests,
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

    /// The model folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

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
    while let Ok(request) = inbox.recv() {
        let _entered = request.span.enter();
        let captions = model.caption(&request.images, &request.decoding);
        // The caller may have stopped waiting (a signal stopped its run).
        let _ = request.reply.send(captions);
    }
}
