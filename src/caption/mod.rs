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
//!
//! Here: the model (load, sessions, vision encoder). `preprocess`: images
//! in, as Pillow and transformers prepare them. `decode`: greedy and beam
//! search. `service`: the thread that owns a loaded model for the loop.
//! `cpu`: which integer kernels ONNX Runtime uses here, and whether an int8
//! folder's weights need its exact (slower) ones.

pub mod cpu;
pub mod dataset;
mod decode;
mod preprocess;
pub mod score;
mod service;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use image::RgbImage;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::{DynValue, Tensor};
use serde::Deserialize;

pub use preprocess::{load_image, preprocess, resize_like_pillow};
pub use service::CaptionService;

use decode::Search;

/// The manifest's file name in a model folder.
pub const MANIFEST: &str = "cadloop-captioner.json";
/// Images larger than this on a side are refused before they are decoded.
pub const MAX_IMAGE_SIDE: u32 = 8192;

/// The captioner could not load or run.
#[derive(Debug, thiserror::Error)]
pub enum CaptionError {
    #[error("the captioner model folder {} does not exist; make one with captioner/export.py (see captioner/README.md)", .0.display())]
    NoModel(PathBuf),
    #[error("{}: {message}", path.display())]
    Manifest { path: PathBuf, message: String },
    #[error("{} is not a captioner manifest", path.display())]
    ManifestJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{} is missing from the captioner model; export the model again (captioner/export.py)", .0.display())]
    MissingFile(PathBuf),
    /// Shared: the runtime is loaded once per process, and each later use
    /// reports the same failure.
    #[error("cannot load ONNX Runtime")]
    Runtime(#[source] Arc<RuntimeError>),
    #[error("ONNX Runtime cannot load {} (the file is damaged or not from captioner/export.py)", path.display())]
    Graph {
        path: PathBuf,
        #[source]
        source: ort::Error,
    },
    #[error("running the {graph} graph failed")]
    Run {
        graph: &'static str,
        #[source]
        source: ort::Error,
    },
    #[error("the {graph} graph gave an unusable output: {problem}")]
    Output {
        graph: &'static str,
        problem: String,
    },
    #[error("{} does not match the manifest: {message}; export the model again", path.display())]
    Mismatch { path: PathBuf, message: String },
    #[error("cannot load the tokenizer {}", path.display())]
    Tokenizer {
        path: PathBuf,
        #[source]
        source: tokenizers::Error,
    },
    #[error("the tokenizer cannot {what}")]
    Tokenize {
        what: &'static str,
        #[source]
        source: tokenizers::Error,
    },
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

/// Why ONNX Runtime could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    NotFound(#[from] OrtNotFound),
    #[error("{} is not a usable ONNX Runtime; cadloop needs the library of the PyPI onnxruntime wheel 1.31 (run the README's set-up)", library.display())]
    Load {
        library: PathBuf,
        #[source]
        source: ort::LoadDynamicError,
    },
    #[error("cannot create the ONNX Runtime environment")]
    Environment(#[source] ort::Error),
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
    /// How export.py quantised the graphs; absent for fp32 folders and for
    /// int8 folders exported before it was recorded.
    #[serde(default)]
    pub quantization: Option<Quantization>,
}

/// The manifest's record of an int8 export.
#[derive(Debug, Clone, Deserialize)]
pub struct Quantization {
    /// The largest magnitude of a quantised weight: 64 leaves the headroom
    /// that 16-bit pair sums need (see [`cpu`]), 127 does not.
    pub weight_max: u32,
}

/// The largest weight magnitude whose pairs of products with uint8
/// activations fit 16 bits: 255 × 64 × 2 ≤ 32767.
const HEADROOM_WEIGHT_MAX: u32 = 64;

/// Which int8 products a folder holds, as far as the CPU's kernels care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Int8Weights {
    /// No integer products: an fp32 folder.
    None,
    /// Weights within ±64: exact on every CPU's kernels.
    Headroom,
    /// Full-range weights (an export from before the range was kept, or
    /// another tool's): pairs of products can saturate 16-bit sums.
    FullRange,
}

/// How captions are decoded.
#[derive(Debug, Clone, PartialEq)]
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

/// Which captioner model to load, with how many threads, decoding how.
#[derive(Debug, Clone)]
pub struct CaptionSettings {
    /// The model folder (made by captioner/export.py).
    pub model: PathBuf,
    /// Threads per ONNX Runtime session.
    pub threads: usize,
    pub decoding: Decoding,
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
    type Loaded = Result<ort::environment::Environment, Arc<RuntimeError>>;
    static ENVIRONMENT: OnceLock<Loaded> = OnceLock::new();
    let result = ENVIRONMENT.get_or_init(|| {
        let library = find_onnxruntime().map_err(|e| Arc::new(e.into()))?;
        let builder = ort::init_from(&library).map_err(|source| {
            Arc::new(RuntimeError::Load {
                library: library.clone(),
                source,
            })
        })?;
        builder
            .with_name("cadloop")
            .build()
            .map_err(|e| Arc::new(RuntimeError::Environment(e)))
    });
    result
        .as_ref()
        .map_err(|e| CaptionError::Runtime(e.clone()))
}

impl Manifest {
    /// What the graphs' int8 weights are, from the manifest's record or,
    /// for folders without one, from whether the vision graph holds integer
    /// products at all.
    fn int8_weights(&self, dir: &Path) -> Result<Int8Weights, CaptionError> {
        if let Some(q) = &self.quantization {
            return Ok(if q.weight_max <= HEADROOM_WEIGHT_MAX {
                Int8Weights::Headroom
            } else {
                Int8Weights::FullRange
            });
        }
        let path = dir.join(&self.graphs.vision);
        let integer =
            holds_integer_products(&path).map_err(|_| CaptionError::MissingFile(path.clone()))?;
        Ok(if integer {
            Int8Weights::FullRange
        } else {
            Int8Weights::None
        })
    }

    /// How the decoder graphs pass their key/value cache.
    fn layout(&self) -> decode::Layout {
        decode::Layout {
            per_layer: self.format >= 2,
            layers: self.layers,
        }
    }

    /// Reads and checks `cadloop-captioner.json`.
    fn read(path: &Path) -> Result<Manifest, CaptionError> {
        let text = std::fs::read_to_string(path)
            .map_err(|_| CaptionError::MissingFile(path.to_path_buf()))?;
        let manifest: Manifest =
            serde_json::from_str(&text).map_err(|source| CaptionError::ManifestJson {
                path: path.to_path_buf(),
                source,
            })?;
        if !(1..=2).contains(&manifest.format) {
            return Err(CaptionError::Manifest {
                path: path.to_path_buf(),
                message: format!(
                    "format {} is not one this cadloop reads (1 or 2)",
                    manifest.format
                ),
            });
        }
        Ok(manifest)
    }
}

/// Whether an ONNX graph holds the operators of ONNX Runtime's dynamic
/// quantisation. Their names are plain strings in the protobuf; the file is
/// read in pieces (an fp32 vision graph is hundreds of megabytes).
fn holds_integer_products(path: &Path) -> std::io::Result<bool> {
    use std::io::Read as _;

    const OPERATORS: [&[u8]; 3] = [
        b"DynamicQuantizeLinear",
        b"MatMulInteger",
        b"DynamicQuantizeMatMul",
    ];
    const OVERLAP: usize = 32;
    let mut file = std::fs::File::open(path)?;
    let mut buffer = vec![0u8; 8 << 20];
    let mut kept = 0;
    loop {
        let read = file.read(&mut buffer[kept..])?;
        if read == 0 {
            return Ok(false);
        }
        let filled = kept + read;
        let window = &buffer[..filled];
        if OPERATORS
            .iter()
            .any(|op| memchr::memmem::find(window, op).is_some())
        {
            return Ok(true);
        }
        kept = filled.min(OVERLAP);
        buffer.copy_within(filled - kept..filled, 0);
    }
}

/// One graph of the model as an ONNX Runtime session; `exact_u8u8` asks
/// for ONNX Runtime's u8×u8 kernels in place of u8×s8 ones whose 16-bit
/// pair sums saturate on full-range weights.
fn open_session(
    environment: &ort::environment::Environment,
    path: &Path,
    threads: usize,
    exact_u8u8: bool,
) -> Result<Session, CaptionError> {
    if !path.is_file() {
        return Err(CaptionError::MissingFile(path.to_path_buf()));
    }
    let graph_err = |source: ort::Error| CaptionError::Graph {
        path: path.to_path_buf(),
        source,
    };
    Session::builder(environment)
        .map_err(graph_err)?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(|e| graph_err(e.into()))?
        .with_intra_threads(threads.max(1))
        .map_err(|e| graph_err(e.into()))?
        .with_inter_threads(1)
        .map_err(|e| graph_err(e.into()))?
        .with_config_entry(
            "session.x64quantprecision",
            if exact_u8u8 { "1" } else { "0" },
        )
        .map_err(|e| graph_err(e.into()))?
        .commit_from_file(path)
        .map_err(graph_err)
}

/// The three graphs take the inputs cadloop feeds, and the vision graph the
/// manifest's image size.
fn check_graphs(
    dir: &Path,
    manifest: &Manifest,
    [vision, init, step]: [&Session; 3],
) -> Result<(), CaptionError> {
    let graphs = &manifest.graphs;
    let layout = manifest.layout();
    let mut step_inputs = vec!["input_ids".to_string()];
    for kind in ["self_k", "self_v", "cross_k", "cross_v"] {
        step_inputs.extend(layout.names(kind));
    }
    let step_inputs: Vec<&str> = step_inputs.iter().map(String::as_str).collect();
    for (session, name, inputs) in [
        (vision, &graphs.vision, &["pixel_values"][..]),
        (
            init,
            &graphs.decoder_init,
            &["input_ids", "image_embeds"][..],
        ),
        (step, &graphs.decoder_step, &step_inputs[..]),
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
            path: dir.join(&graphs.vision),
            message: format!(
                "pixel_values has shape {pixel_shape:?}, the manifest says {side}² RGB images"
            ),
        });
    }
    Ok(())
}

/// The tokenizer, which must not know more tokens than the model scores.
fn load_tokenizer(path: &Path, vocab_size: usize) -> Result<tokenizers::Tokenizer, CaptionError> {
    if !path.is_file() {
        return Err(CaptionError::MissingFile(path.to_path_buf()));
    }
    let tokenizer =
        tokenizers::Tokenizer::from_file(path).map_err(|source| CaptionError::Tokenizer {
            path: path.to_path_buf(),
            source,
        })?;
    if tokenizer.get_vocab_size(true) > vocab_size {
        return Err(CaptionError::Mismatch {
            path: path.to_path_buf(),
            message: format!(
                "the tokenizer has {} tokens, the model {vocab_size}",
                tokenizer.get_vocab_size(true),
            ),
        });
    }
    Ok(tokenizer)
}

/// Says once per process that a full-range int8 folder runs on slower
/// exact kernels here, and how to get the fast ones back.
fn warn_once_full_range(dir: &Path, path: cpu::IntegerPath) {
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        tracing::warn!(
            "{}: int8 weights in the full range, which ONNX Runtime's {path} kernels on this CPU \
             would saturate; running them on its exact u8×u8 kernels instead (slower); export the \
             folder again with captioner/export.py --quantize int8 for weights that need neither",
            dir.display()
        );
    });
}

/// A loaded model: three sessions and a tokenizer.
pub struct Captioner {
    manifest: Manifest,
    exact_u8u8: bool,
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
        let manifest = Manifest::read(&dir.join(MANIFEST))?;
        let environment = runtime()?;
        let path = cpu::IntegerPath::detect();
        // Only a CPU whose kernels can saturate needs to know the weights' range.
        let int8 = if path.saturates_full_range() {
            Some(manifest.int8_weights(dir)?)
        } else {
            None
        };
        let exact_u8u8 = int8 == Some(Int8Weights::FullRange);
        if exact_u8u8 {
            warn_once_full_range(dir, path);
        }
        tracing::debug!(integer_path = %path, ?int8, exact_u8u8, "captioner kernels");
        let open = |name: &str| open_session(environment, &dir.join(name), threads, exact_u8u8);
        let vision = open(&manifest.graphs.vision)?;
        let init = open(&manifest.graphs.decoder_init)?;
        let step = open(&manifest.graphs.decoder_step)?;
        check_graphs(dir, &manifest, [&vision, &init, &step])?;
        let tokenizer = load_tokenizer(&dir.join(&manifest.tokenizer), manifest.vocab_size)?;
        Ok(Captioner {
            manifest,
            exact_u8u8,
            vision,
            init,
            step,
            tokenizer,
        })
    }

    /// Whether this CPU runs the folder on ONNX Runtime's exact u8×u8
    /// kernels because its weights use the full int8 range.
    pub fn exact_u8u8(&self) -> bool {
        self.exact_u8u8
    }

    /// The model folder's manifest, as read.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn layout(&self) -> decode::Layout {
        self.manifest.layout()
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
                let text = self.tokenizer.decode(&words, true).map_err(|source| {
                    CaptionError::Tokenize {
                        what: "decode a caption",
                        source,
                    }
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
                .map_err(|source| CaptionError::Tokenize {
                    what: "encode the prefix",
                    source,
                })?;
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
        let started = std::time::Instant::now();
        let embeds = self.encode_images(pixels, batch, size)?;
        let vision_ms = started.elapsed().as_secs_f64() * 1e3;
        let started = std::time::Instant::now();
        let search = Search {
            start,
            max_length,
            beams: decoding.beams,
            penalty: decoding.repetition_penalty,
            sep: self.manifest.sep_token_id,
            pad: self.manifest.pad_token_id,
        };
        let generated = if decoding.beams == 1 {
            search.greedy(self, embeds, batch)
        } else {
            search.beam(self, embeds, batch)
        };
        tracing::debug!(
            images = batch,
            vision_ms,
            decode_ms = started.elapsed().as_secs_f64() * 1e3,
            "caption passes"
        );
        generated
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
            .ok_or_else(|| output_err("vision", "no image_embeds output"))
    }
}

fn run_err(graph: &'static str, source: ort::Error) -> CaptionError {
    CaptionError::Run { graph, source }
}

fn output_err(graph: &'static str, problem: &str) -> CaptionError {
    CaptionError::Output {
        graph,
        problem: problem.to_string(),
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
