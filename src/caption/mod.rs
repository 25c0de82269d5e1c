//! The captioner: BLIP exported to ONNX (by `captioner/export.py` or
//! `captioner/make_tiny.py`), run by ONNX Runtime through `ort`.
//!
//! Stage in the flow: the renderer's seven views come in; one caption per view
//! goes to the critique, which compares them with the prompt.
//!
//! A model folder holds `vision.onnx`, `decoder_init.onnx`,
//! `decoder_step.onnx` (the decoder with an explicit key/value cache, so each
//! new token costs one step, not a pass over the whole sequence),
//! `tokenizer.json` and the manifest `cadloop-captioner.json`. Sessions are
//! built once with explicit thread counts and reused; all images go through
//! the vision encoder in one batch.
//!
//! Decoding follows transformers' `generate` for BLIP so that the same model
//! gives the same tokens: greedy or beam search (length penalty 1, no early
//! stop beyond its heuristic), an optional repetition penalty (on raw logits
//! for greedy, on log-probabilities for beams, as transformers does), an
//! optional text prefix after the `[DEC]` token.

mod service;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use image::RgbImage;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::{DynValue, Tensor};
use serde::Deserialize;

pub use service::CaptionService;

/// The manifest's file name in a model folder.
pub const MANIFEST: &str = "cadloop-captioner.json";
/// Images larger than this on a side are refused before they are decoded.
pub const MAX_IMAGE_SIDE: u32 = 8192;

#[derive(Debug, thiserror::Error)]
pub enum CaptionError {
    #[error("the captioner model folder {} does not exist; make one with captioner/export.py (see captioner/README.md)", .0.display())]
    NoModel(PathBuf),
    #[error("{}: {message}", path.display())]
    Manifest { path: PathBuf, message: String },
    #[error("{} is missing from the captioner model; export the model again (captioner/export.py)", .0.display())]
    MissingFile(PathBuf),
    #[error("cannot load ONNX Runtime: {0}")]
    Runtime(String),
    #[error("ONNX Runtime cannot load {}: {message}; the file is damaged or not from captioner/export.py", path.display())]
    Graph { path: PathBuf, message: String },
    #[error("running the {graph} graph failed: {message}")]
    Run {
        graph: &'static str,
        message: String,
    },
    #[error("{} does not match the manifest: {message}; export the model again", path.display())]
    Mismatch { path: PathBuf, message: String },
    #[error("cannot load the tokenizer {}: {message}", path.display())]
    Tokenizer { path: PathBuf, message: String },
    #[error("cannot read the image {}", path.display())]
    Image {
        path: PathBuf,
        #[source]
        source: image::ImageError,
    },
    #[error("the image {} is {width} × {height} pixels; images up to {MAX_IMAGE_SIDE} on a side are accepted, scale it down", path.display())]
    ImageTooLarge {
        path: PathBuf,
        width: u32,
        height: u32,
    },
    #[error("bad decoding settings: {0}")]
    Settings(String),
    #[error("cannot start the captioner's thread")]
    Thread(#[source] std::io::Error),
    #[error("the captioner's thread stopped (it failed while captioning)")]
    Stopped,
}

#[derive(Debug, Clone, Deserialize)]
struct Graphs {
    vision: String,
    decoder_init: String,
    decoder_step: String,
}

/// `cadloop-captioner.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub image_size: u32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub rescale: f32,
    pub bos_token_id: u32,
    pub sep_token_id: u32,
    pub pad_token_id: u32,
    pub vocab_size: usize,
    pub layers: usize,
    pub heads: usize,
    pub head_dim: usize,
    pub max_length: usize,
    graphs: Graphs,
    tokenizer: String,
}

/// How captions are decoded.
#[derive(Debug, Clone)]
pub struct Decoding {
    /// 1 for greedy decoding.
    pub beams: usize,
    /// Tokens in all, `[DEC]` and the prefix included; `None`: the manifest's.
    pub max_length: Option<usize>,
    /// 1 leaves scores alone; above 1 discourages repeating a token.
    pub repetition_penalty: f32,
    /// Text the caption starts with (conditional captioning), e.g. "a cad model of".
    pub prefix: Option<String>,
}

impl Default for Decoding {
    fn default() -> Self {
        Decoding {
            beams: 3,
            max_length: None,
            repetition_penalty: 1.0,
            prefix: None,
        }
    }
}

/// One image's caption.
#[derive(Debug, Clone, PartialEq)]
pub struct Caption {
    pub text: String,
    /// Token ids, `[DEC]` first, up to and including `[SEP]` when it came.
    pub ids: Vec<u32>,
    /// Mean log-probability per generated token (≤ 0; closer to 0 is surer).
    pub score: f32,
}

/// Why ONNX Runtime's library could not be found.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OrtNotFound {
    #[error("ORT_DYLIB_PATH names {}, which does not exist", .0.display())]
    NoSuchFile(PathBuf),
    #[error(
        "libonnxruntime.so was not found: run the README's set-up (it installs the PyPI onnxruntime wheel \
         into .venv) or set ORT_DYLIB_PATH"
    )]
    NotInstalled,
}

/// Finds ONNX Runtime's shared library: `ORT_DYLIB_PATH`, else the PyPI
/// `onnxruntime` wheel in a `.venv` of the working directory or of a folder
/// above the cadloop binary (where the project's set-up puts it).
pub fn find_onnxruntime() -> Result<PathBuf, OrtNotFound> {
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(OrtNotFound::NoSuchFile(path))
        };
    }
    let mut roots = vec![std::env::current_dir().unwrap_or_default()];
    if let Ok(exe) = std::env::current_exe() {
        roots.extend(exe.ancestors().skip(1).map(Path::to_path_buf));
    }
    for root in roots {
        let lib = root.join(".venv/lib");
        let Ok(pythons) = std::fs::read_dir(&lib) else {
            continue;
        };
        for python in pythons.flatten() {
            let capi = python.path().join("site-packages/onnxruntime/capi");
            let Ok(files) = std::fs::read_dir(&capi) else {
                continue;
            };
            let mut found: Vec<PathBuf> = files
                .flatten()
                .map(|f| f.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("libonnxruntime.so."))
                })
                .collect();
            found.sort();
            if let Some(path) = found.pop() {
                return Ok(path);
            }
        }
    }
    Err(OrtNotFound::NotInstalled)
}

/// The ONNX Runtime environment, created once per process from the library
/// [`find_onnxruntime`] locates.
fn runtime() -> Result<&'static ort::environment::Environment, CaptionError> {
    static ENVIRONMENT: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();
    let result = ENVIRONMENT.get_or_init(|| {
        let library = find_onnxruntime().map_err(|e| e.to_string())?;
        let builder = ort::init_from(&library).map_err(|e| {
            format!("{e}; cadloop needs the library of the PyPI onnxruntime wheel 1.31 (run the README's set-up)")
        })?;
        builder.with_name("cadloop").build().map_err(|e| e.to_string())
    });
    result
        .as_ref()
        .map_err(|e| CaptionError::Runtime(e.clone()))
}

/// A loaded model: three sessions and a tokenizer.
pub struct Captioner {
    manifest: Manifest,
    vision: Session,
    init: Session,
    step: Session,
    tokenizer: tokenizers::Tokenizer,
}

impl Captioner {
    /// Loads the model in `dir`; `threads` is each session's intra-op thread count.
    pub fn load(dir: &Path, threads: usize) -> Result<Captioner, CaptionError> {
        if !dir.is_dir() {
            return Err(CaptionError::NoModel(dir.to_path_buf()));
        }
        let manifest_path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&manifest_path)
            .map_err(|_| CaptionError::MissingFile(manifest_path.clone()))?;
        let manifest: Manifest =
            serde_json::from_str(&text).map_err(|e| CaptionError::Manifest {
                path: manifest_path.clone(),
                message: e.to_string(),
            })?;
        if manifest.format != 1 {
            return Err(CaptionError::Manifest {
                path: manifest_path,
                message: format!(
                    "format {} is not one this cadloop reads (1)",
                    manifest.format
                ),
            });
        }
        let environment = runtime()?;
        let open = |name: &str| -> Result<Session, CaptionError> {
            let path = dir.join(name);
            if !path.is_file() {
                return Err(CaptionError::MissingFile(path));
            }
            let graph_err = |e: ort::Error| CaptionError::Graph {
                path: path.clone(),
                message: e.to_string(),
            };
            Session::builder(environment)
                .map_err(graph_err)?
                .with_optimization_level(GraphOptimizationLevel::All)
                .map_err(|e| graph_err(e.into()))?
                .with_intra_threads(threads.max(1))
                .map_err(|e| graph_err(e.into()))?
                .with_inter_threads(1)
                .map_err(|e| graph_err(e.into()))?
                .commit_from_file(&path)
                .map_err(graph_err)
        };
        let vision = open(&manifest.graphs.vision)?;
        let init = open(&manifest.graphs.decoder_init)?;
        let step = open(&manifest.graphs.decoder_step)?;
        for (session, name, inputs) in [
            (&vision, &manifest.graphs.vision, &["pixel_values"][..]),
            (
                &init,
                &manifest.graphs.decoder_init,
                &["input_ids", "image_embeds"][..],
            ),
            (
                &step,
                &manifest.graphs.decoder_step,
                &["input_ids", "self_k", "self_v", "cross_k", "cross_v"][..],
            ),
        ] {
            let have: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
            if have != inputs {
                return Err(CaptionError::Mismatch {
                    path: dir.join(name),
                    message: format!("inputs are {have:?}, expected {inputs:?}"),
                });
            }
        }
        // The image size is fixed in the vision graph; it must be the manifest's.
        let pixel_shape = vision.inputs()[0]
            .dtype()
            .tensor_shape()
            .map(|s| s.to_vec());
        let side = manifest.image_size as i64;
        if !matches!(pixel_shape.as_deref(), Some([_, 3, h, w]) if *h == side && *w == side) {
            return Err(CaptionError::Mismatch {
                path: dir.join(&manifest.graphs.vision),
                message: format!(
                    "pixel_values has shape {pixel_shape:?}, the manifest says {side}² RGB images"
                ),
            });
        }
        let tokenizer_path = dir.join(&manifest.tokenizer);
        if !tokenizer_path.is_file() {
            return Err(CaptionError::MissingFile(tokenizer_path));
        }
        let tokenizer = tokenizers::Tokenizer::from_file(&tokenizer_path).map_err(|e| {
            CaptionError::Tokenizer {
                path: tokenizer_path.clone(),
                message: e.to_string(),
            }
        })?;
        if tokenizer.get_vocab_size(true) > manifest.vocab_size {
            return Err(CaptionError::Mismatch {
                path: tokenizer_path,
                message: format!(
                    "the tokenizer has {} tokens, the model {}",
                    tokenizer.get_vocab_size(true),
                    manifest.vocab_size
                ),
            });
        }
        Ok(Captioner {
            manifest,
            vision,
            init,
            step,
            tokenizer,
        })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Captions images: one vision pass for all of them, then decoding.
    pub fn caption(
        &mut self,
        images: &[RgbImage],
        decoding: &Decoding,
    ) -> Result<Vec<Caption>, CaptionError> {
        let m = &self.manifest;
        let pixels: Vec<f32> = images
            .iter()
            .flat_map(|image| preprocess(image, m.image_size, m.mean, m.std, m.rescale))
            .collect();
        let generated = self.generate(&pixels, images.len(), decoding)?;
        generated
            .into_iter()
            .map(|(ids, score)| {
                // The start and end tokens are structure, not words, whatever
                // the tokenizer file marks as special.
                let m = &self.manifest;
                let words: Vec<u32> = ids
                    .iter()
                    .copied()
                    .filter(|&t| t != m.bos_token_id && t != m.sep_token_id && t != m.pad_token_id)
                    .collect();
                let text = self
                    .tokenizer
                    .decode(&words, true)
                    .map_err(|e| CaptionError::Run {
                        graph: "tokenizer",
                        message: e.to_string(),
                    })?;
                Ok(Caption {
                    text: text.trim().to_string(),
                    ids,
                    score,
                })
            })
            .collect()
    }

    /// Token ids and scores for `batch` preprocessed images (NCHW, f32).
    pub fn generate(
        &mut self,
        pixels: &[f32],
        batch: usize,
        decoding: &Decoding,
    ) -> Result<Vec<(Vec<u32>, f32)>, CaptionError> {
        if batch == 0 {
            return Ok(Vec::new());
        }
        if decoding.beams == 0 || decoding.beams > 16 {
            return Err(CaptionError::Settings(format!(
                "{} beams; use 1 to 16",
                decoding.beams
            )));
        }
        if !(decoding.repetition_penalty.is_finite() && decoding.repetition_penalty > 0.0) {
            return Err(CaptionError::Settings(format!(
                "repetition penalty {}; use a positive number (1 = none)",
                decoding.repetition_penalty
            )));
        }
        let mut start = vec![self.manifest.bos_token_id];
        if let Some(prefix) = &decoding.prefix {
            let encoded = self
                .tokenizer
                .encode(prefix.as_str(), false)
                .map_err(|e| CaptionError::Settings(format!("cannot tokenize the prefix: {e}")))?;
            start.extend(encoded.get_ids());
        }
        let max_length = decoding.max_length.unwrap_or(self.manifest.max_length);
        if max_length <= start.len() {
            return Err(CaptionError::Settings(format!(
                "max length {max_length} leaves no room after the prefix ({} tokens)",
                start.len()
            )));
        }
        let size = self.manifest.image_size as usize;
        let embeds = self.encode_images(pixels, batch, size)?;
        let search = Search {
            start,
            max_length,
            beams: decoding.beams,
            penalty: decoding.repetition_penalty,
            sep: self.manifest.sep_token_id,
            pad: self.manifest.pad_token_id,
        };
        if decoding.beams == 1 {
            search.greedy(self, embeds, batch)
        } else {
            search.beam(self, embeds, batch)
        }
    }

    fn encode_images(
        &mut self,
        pixels: &[f32],
        batch: usize,
        size: usize,
    ) -> Result<DynValue, CaptionError> {
        let expected = batch * 3 * size * size;
        if pixels.len() != expected {
            return Err(CaptionError::Settings(format!(
                "{} pixel values for {batch} images of {size}², expected {expected}",
                pixels.len()
            )));
        }
        let input = tensor_f32(vec![batch, 3, size, size], pixels.to_vec(), "vision")?;
        let mut outputs = self
            .vision
            .run(ort::inputs!["pixel_values" => input])
            .map_err(|e| run_err("vision", e))?;
        outputs
            .remove("image_embeds")
            .ok_or_else(|| run_err_text("vision", "no image_embeds output"))
    }
}

fn run_err(graph: &'static str, e: ort::Error) -> CaptionError {
    CaptionError::Run {
        graph,
        message: e.to_string(),
    }
}

fn run_err_text(graph: &'static str, message: &str) -> CaptionError {
    CaptionError::Run {
        graph,
        message: message.to_string(),
    }
}

fn tensor_f32(
    shape: Vec<usize>,
    data: Vec<f32>,
    graph: &'static str,
) -> Result<Tensor<f32>, CaptionError> {
    Tensor::from_array((shape, data)).map_err(|e| run_err(graph, e))
}

fn tensor_ids(
    rows: &[Vec<u32>],
    from: usize,
    graph: &'static str,
) -> Result<Tensor<i64>, CaptionError> {
    let width = rows[0].len() - from;
    let data: Vec<i64> = rows
        .iter()
        .flat_map(|r| r[from..].iter().map(|&t| t as i64))
        .collect();
    Tensor::from_array((vec![rows.len(), width], data)).map_err(|e| run_err(graph, e))
}

/// The decoder's key/value cache between steps.
struct Cache {
    self_k: DynValue,
    self_v: DynValue,
    cross_k: DynValue,
    cross_v: DynValue,
}

/// Last-position logits, one row per sequence.
fn logits_rows(value: &DynValue, graph: &'static str) -> Result<Vec<Vec<f32>>, CaptionError> {
    let (shape, data) = value
        .try_extract_tensor::<f32>()
        .map_err(|e| run_err(graph, e))?;
    let vocab = *shape
        .last()
        .ok_or_else(|| run_err_text(graph, "logits have no shape"))? as usize;
    Ok(data.chunks(vocab.max(1)).map(<[f32]>::to_vec).collect())
}

/// Takes the entries of `axis` in `order` (entries may repeat): the batch
/// axis is 0 for image embeddings and 1 for the `[L, B, …]` caches.
fn gather_axis(
    value: &DynValue,
    axis: usize,
    order: &[usize],
    graph: &'static str,
) -> Result<DynValue, CaptionError> {
    let (shape, data) = value
        .try_extract_tensor::<f32>()
        .map_err(|e| run_err(graph, e))?;
    let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    let outer: usize = dims[..axis].iter().product();
    let inner: usize = dims[axis + 1..].iter().product();
    let mut out = Vec::with_capacity(outer * order.len() * inner);
    for o in 0..outer {
        for &b in order {
            let at = (o * dims[axis] + b) * inner;
            out.extend_from_slice(&data[at..at + inner]);
        }
    }
    let mut new_dims = dims;
    new_dims[axis] = order.len();
    Ok(tensor_f32(new_dims, out, graph)?.into_dyn())
}

/// transformers' repetition penalty: each distinct token already in the
/// sequence has its score divided by the penalty when positive, multiplied
/// when negative (once, however often it occurred).
fn apply_repetition_penalty(scores: &mut [f32], sequence: &[u32], penalty: f32) {
    if penalty == 1.0 {
        return;
    }
    let mut seen = sequence.to_vec();
    seen.sort_unstable();
    seen.dedup();
    for token in seen {
        if let Some(s) = scores.get_mut(token as usize) {
            *s = if *s < 0.0 { *s * penalty } else { *s / penalty };
        }
    }
}

fn log_softmax(row: &[f32]) -> Vec<f32> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = row.iter().map(|&x| (x - max).exp()).sum();
    let log_sum = sum.ln() + max;
    row.iter().map(|&x| x - log_sum).collect()
}

/// Index of the largest value; the first one on ties, as torch.argmax.
fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// One decoding run's fixed settings.
struct Search {
    start: Vec<u32>,
    max_length: usize,
    beams: usize,
    penalty: f32,
    sep: u32,
    pad: u32,
}

impl Search {
    /// Runs the first decoder pass over `rows` (all the same length).
    fn first(
        &self,
        model: &mut Captioner,
        rows: &[Vec<u32>],
        embeds: &DynValue,
    ) -> Result<(Vec<Vec<f32>>, Cache), CaptionError> {
        let ids = tensor_ids(rows, 0, "decoder_init")?;
        let mut out = model
            .init
            .run(ort::inputs!["input_ids" => ids, "image_embeds" => embeds])
            .map_err(|e| run_err("decoder_init", e))?;
        let logits = logits_rows(&out["logits"], "decoder_init")?;
        if logits[0].len() != model.manifest.vocab_size {
            return Err(CaptionError::Run {
                graph: "decoder_init",
                message: format!(
                    "the decoder scores {} tokens, the manifest says {}; export the model again",
                    logits[0].len(),
                    model.manifest.vocab_size
                ),
            });
        }
        let mut take = |name: &str| {
            out.remove(name)
                .ok_or_else(|| run_err_text("decoder_init", "missing output"))
        };
        let cache = Cache {
            self_k: take("self_k")?,
            self_v: take("self_v")?,
            cross_k: take("cross_k")?,
            cross_v: take("cross_v")?,
        };
        Ok((logits, cache))
    }

    /// Feeds the last token of each row; returns the logits and the grown cache.
    fn next(
        &self,
        model: &mut Captioner,
        rows: &[Vec<u32>],
        cache: Cache,
    ) -> Result<(Vec<Vec<f32>>, Cache), CaptionError> {
        let ids = tensor_ids(rows, rows[0].len() - 1, "decoder_step")?;
        let mut out = model
            .step
            .run(ort::inputs![
                "input_ids" => ids,
                "self_k" => &cache.self_k,
                "self_v" => &cache.self_v,
                "cross_k" => &cache.cross_k,
                "cross_v" => &cache.cross_v,
            ])
            .map_err(|e| run_err("decoder_step", e))?;
        let logits = logits_rows(&out["logits"], "decoder_step")?;
        let self_k = out
            .remove("next_k")
            .ok_or_else(|| run_err_text("decoder_step", "missing next_k"))?;
        let self_v = out
            .remove("next_v")
            .ok_or_else(|| run_err_text("decoder_step", "missing next_v"))?;
        drop(out);
        Ok((
            logits,
            Cache {
                self_k,
                self_v,
                cross_k: cache.cross_k,
                cross_v: cache.cross_v,
            },
        ))
    }

    fn greedy(
        &self,
        model: &mut Captioner,
        embeds: DynValue,
        batch: usize,
    ) -> Result<Vec<(Vec<u32>, f32)>, CaptionError> {
        let mut rows = vec![self.start.clone(); batch];
        let mut done = vec![false; batch];
        let mut sums = vec![0f32; batch];
        let mut counts = vec![0usize; batch];
        let (mut logits, mut cache) = self.first(model, &rows, &embeds)?;
        loop {
            for (b, row) in rows.iter_mut().enumerate() {
                // A finished row still runs with the batch; it only grows padding.
                if done[b] {
                    row.push(self.pad);
                    continue;
                }
                let mut scores = logits[b].clone();
                apply_repetition_penalty(&mut scores, row, self.penalty);
                let token = argmax(&scores) as u32;
                sums[b] += log_softmax(&scores)[token as usize];
                counts[b] += 1;
                row.push(token);
                done[b] = token == self.sep;
            }
            if done.iter().all(|&d| d) || rows[0].len() >= self.max_length {
                break;
            }
            (logits, cache) = self.next(model, &rows, cache)?;
        }
        Ok(rows
            .into_iter()
            .enumerate()
            .map(|(b, row)| (trim(row, self.sep), sums[b] / counts[b].max(1) as f32))
            .collect())
    }

    /// transformers' beam search (length penalty 1, `early_stopping=False`).
    fn beam(
        &self,
        model: &mut Captioner,
        embeds: DynValue,
        batch: usize,
    ) -> Result<Vec<(Vec<u32>, f32)>, CaptionError> {
        let k = self.beams;
        let keep = 2 * k;
        let prompt = self.start.len();
        // running[b][j]: sequence and accumulated log-probability of beam j of image b.
        let mut running: Vec<Vec<(Vec<u32>, f32)>> = (0..batch)
            .map(|_| {
                (0..k)
                    .map(|j| (self.start.clone(), if j == 0 { 0.0 } else { -1e9 }))
                    .collect()
            })
            .collect();
        let mut finished: Vec<Vec<(Vec<u32>, f32)>> = vec![Vec::new(); batch];
        let mut open = vec![true; batch];
        let flat = |running: &Vec<Vec<(Vec<u32>, f32)>>| -> Vec<Vec<u32>> {
            running
                .iter()
                .flat_map(|beams| beams.iter().map(|(s, _)| s.clone()))
                .collect()
        };
        // All beams of an image start alike: one first pass per image (its
        // cross-attention keys/values are the costly part), then copies.
        let (first_logits, first_cache) =
            self.first(model, &vec![self.start.clone(); batch], &embeds)?;
        let expanded: Vec<usize> = (0..batch).flat_map(|b| std::iter::repeat_n(b, k)).collect();
        let mut logits: Vec<Vec<f32>> = expanded.iter().map(|&b| first_logits[b].clone()).collect();
        let mut cache = Cache {
            self_k: gather_axis(&first_cache.self_k, 1, &expanded, "decoder_init")?,
            self_v: gather_axis(&first_cache.self_v, 1, &expanded, "decoder_init")?,
            cross_k: gather_axis(&first_cache.cross_k, 1, &expanded, "decoder_init")?,
            cross_v: gather_axis(&first_cache.cross_v, 1, &expanded, "decoder_init")?,
        };
        drop(first_cache);
        let mut cur_len = prompt;
        loop {
            let mut order = Vec::with_capacity(batch * k);
            let mut all_stop = true;
            for b in 0..batch {
                // Top `keep` continuations over all beams and tokens.
                let mut candidates: Vec<(f32, usize, u32)> = Vec::new();
                for (j, (seq, score)) in running[b].iter().enumerate() {
                    let mut lp = log_softmax(&logits[b * k + j]);
                    apply_repetition_penalty(&mut lp, seq, self.penalty);
                    candidates.extend(
                        lp.iter()
                            .enumerate()
                            .map(|(t, &p)| (p + score, j, t as u32)),
                    );
                }
                candidates.sort_by(|a, c| c.0.total_cmp(&a.0).then((a.1, a.2).cmp(&(c.1, c.2))));
                candidates.truncate(keep);
                let hits: Vec<bool> = candidates
                    .iter()
                    .map(|&(_, _, t)| t == self.sep || cur_len + 1 >= self.max_length)
                    .collect();
                all_stop &= hits.iter().all(|&h| h);
                // Finished: the top-k candidates that stop, scored per generated token.
                if open[b] {
                    for (rank, (&(score, j, t), &hit)) in candidates.iter().zip(&hits).enumerate() {
                        if hit && rank < k {
                            let mut seq = running[b][j].0.clone();
                            seq.push(t);
                            finished[b].push((seq, score / (cur_len + 1 - prompt) as f32));
                        }
                    }
                    finished[b].sort_by(|a, c| c.1.total_cmp(&a.1));
                    finished[b].truncate(k);
                }
                // Running: the best k candidates that do not stop.
                let mut next: Vec<(f32, usize, u32)> = candidates
                    .iter()
                    .zip(&hits)
                    .map(|(&(s, j, t), &hit)| (if hit { s - 1e9 } else { s }, j, t))
                    .collect();
                next.sort_by(|a, c| c.0.total_cmp(&a.0));
                next.truncate(k);
                let previous = std::mem::take(&mut running[b]);
                running[b] = next
                    .iter()
                    .map(|&(s, j, t)| {
                        let mut seq = previous[j].0.clone();
                        seq.push(t);
                        (seq, s)
                    })
                    .collect();
                order.extend(next.iter().map(|&(_, j, _)| b * k + j));
            }
            cur_len += 1;
            for b in 0..batch {
                // Stop a batch entry once no running beam can beat its worst finished one.
                let best_running = running[b][0].1 / (cur_len - prompt) as f32;
                let worst_finished = if finished[b].len() == k {
                    finished[b]
                        .iter()
                        .map(|f| f.1)
                        .fold(f32::INFINITY, f32::min)
                } else {
                    -1e9
                };
                open[b] &= best_running > worst_finished;
            }
            if all_stop || !open.iter().any(|&o| o) {
                break;
            }
            cache = Cache {
                self_k: gather_axis(&cache.self_k, 1, &order, "decoder_step")?,
                self_v: gather_axis(&cache.self_v, 1, &order, "decoder_step")?,
                ..cache
            };
            (logits, cache) = self.next(model, &flat(&running), cache)?;
        }
        // The best finished beam; its score is already per generated token.
        Ok(finished
            .into_iter()
            .zip(running)
            .map(|(done, live)| {
                let (seq, score) = done.into_iter().next().unwrap_or_else(|| {
                    let (seq, sum) = live.into_iter().next().unwrap_or_default();
                    let generated = (seq.len() - prompt).max(1) as f32;
                    (seq, sum / generated)
                });
                (trim(seq, self.sep), score)
            })
            .collect())
    }
}

/// Cuts a sequence after its first `[SEP]`.
fn trim(mut ids: Vec<u32>, sep: u32) -> Vec<u32> {
    if let Some(at) = ids.iter().position(|&t| t == sep) {
        ids.truncate(at + 1);
    }
    ids
}

/// BLIP's image preprocessing, as transformers' BlipImageProcessor does it
/// with Pillow: bicubic resize to `size`², rescale, normalise, CHW.
pub fn preprocess(
    image: &RgbImage,
    size: u32,
    mean: [f32; 3],
    std: [f32; 3],
    rescale: f32,
) -> Vec<f32> {
    let resized;
    let image = if image.dimensions() == (size, size) {
        image
    } else {
        resized = resize_like_pillow(image, size, size);
        &resized
    };
    let plane = (size * size) as usize;
    let mut out = vec![0f32; 3 * plane];
    for (i, pixel) in image.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = (pixel.0[c] as f32 * rescale - mean[c]) / std[c];
        }
    }
    out
}

/// Pillow's fixed-point precision for 8-bit resampling.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Pillow's bicubic kernel (a = −0.5).
fn bicubic(x: f64) -> f64 {
    let a = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * a
    } else {
        0.0
    }
}

/// For each output position: the first input index and the fixed-point
/// weights of the inputs it reads, as Pillow computes them (the kernel is
/// widened by the scale when shrinking, so it averages instead of skipping).
fn resample_weights(in_size: usize, out_size: usize) -> Vec<(usize, Vec<i64>)> {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = 2.0 * filter_scale;
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let weights: Vec<f64> = (xmin..xmax)
                .map(|x| bicubic((x as f64 - center + 0.5) / filter_scale))
                .collect();
            let total: f64 = weights.iter().sum();
            let one = (1i64 << PRECISION_BITS) as f64;
            let fixed = weights
                .iter()
                .map(|w| {
                    let w = if total != 0.0 { w / total } else { *w };
                    if w < 0.0 {
                        (-0.5 + w * one) as i64
                    } else {
                        (0.5 + w * one) as i64
                    }
                })
                .collect();
            (xmin, fixed)
        })
        .collect()
}

fn clip8(value: i64) -> u8 {
    (value >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes as Pillow's `Image.resize(…, BICUBIC)` does for RGB: a horizontal
/// then a vertical fixed-point pass through an 8-bit intermediate image, so the
/// result matches transformers' preprocessing.
pub fn resize_like_pillow(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (in_w, in_h) = (image.width() as usize, image.height() as usize);
    let (out_w, out_h) = (width as usize, height as usize);
    let rounding = 1i64 << (PRECISION_BITS - 1);
    let columns = resample_weights(in_w, out_w);
    let rows = resample_weights(in_h, out_h);
    let src = image.as_raw();
    let mut middle = vec![0u8; out_w * in_h * 3];
    if in_w == out_w {
        middle.copy_from_slice(src);
    } else {
        for y in 0..in_h {
            for (x, (first, weights)) in columns.iter().enumerate() {
                for c in 0..3 {
                    let mut acc = rounding;
                    for (i, w) in weights.iter().enumerate() {
                        acc += src[(y * in_w + first + i) * 3 + c] as i64 * w;
                    }
                    middle[(y * out_w + x) * 3 + c] = clip8(acc);
                }
            }
        }
    }
    if in_h == out_h {
        return RgbImage::from_raw(width, height, middle).expect("sized buffer");
    }
    let mut out = vec![0u8; out_w * out_h * 3];
    for (y, (first, weights)) in rows.iter().enumerate() {
        for x in 0..out_w {
            for c in 0..3 {
                let mut acc = rounding;
                for (i, w) in weights.iter().enumerate() {
                    acc += middle[((first + i) * out_w + x) * 3 + c] as i64 * w;
                }
                out[(y * out_w + x) * 3 + c] = clip8(acc);
            }
        }
    }
    RgbImage::from_raw(width, height, out).expect("sized buffer")
}

/// Reads an image file as RGB, refusing sizes beyond [`MAX_IMAGE_SIDE`]
/// before decoding them.
pub fn load_image(path: &Path) -> Result<RgbImage, CaptionError> {
    let image_err = |source| CaptionError::Image {
        path: path.to_path_buf(),
        source,
    };
    let reader = image::ImageReader::open(path)
        .map_err(|e| image_err(image::ImageError::IoError(e)))?
        .with_guessed_format()
        .map_err(|e| image_err(image::ImageError::IoError(e)))?;
    let (width, height) = reader.into_dimensions().map_err(image_err)?;
    if width > MAX_IMAGE_SIDE || height > MAX_IMAGE_SIDE {
        return Err(CaptionError::ImageTooLarge {
            path: path.to_path_buf(),
            width,
            height,
        });
    }
    let reader = image::ImageReader::open(path)
        .map_err(|e| image_err(image::ImageError::IoError(e)))?
        .with_guessed_format()
        .map_err(|e| image_err(image::ImageError::IoError(e)))?;
    Ok(reader.decode().map_err(image_err)?.to_rgb8())
}
