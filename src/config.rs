//! Checked settings: command-line flags over `cadloop.toml` over defaults.
//! Nothing runs until these checks pass, so a bad value is reported before any
//! work starts, naming where it came from: the flag, or the settings file's
//! key (a file that does not parse is named with its line by `load_file`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::caption::Decoding;
use crate::executor::ExecutorSettings;
use crate::llm::LlmSettings;
use crate::render::{self, RenderSettings};

/// The most repairs, or refine rounds, a run of the loop may use.
pub const MAX_ROUNDS: u32 = 20;

/// How many repairs and refine rounds a run of the loop may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub max_repairs: u32,
    pub max_refines: u32,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            max_repairs: 3,
            max_refines: 3,
        }
    }
}

/// The settings file looked for in the working directory.
pub const DEFAULT_CONFIG_FILE: &str = "cadloop.toml";

/// Settings that cannot be used, naming the flag, variable or file key and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the settings file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("{what}: {message}")]
    Invalid { what: String, message: String },
    #[error("cannot find the cadloop binary to start workers")]
    Exe(#[source] std::io::Error),
    #[error("no LLM endpoint is configured. cadloop needs an OpenAI-compatible chat endpoint:\n\
             \x20 OpenAI:       export OPENAI_API_KEY=sk-...   (model {model} unless --model says otherwise)\n\
             \x20 Ollama:       cadloop generate --base-url http://127.0.0.1:11434/v1 --model qwen2.5-coder:7b \"...\"\n\
             \x20 llama.cpp:    cadloop generate --base-url http://127.0.0.1:8080/v1 --model local \"...\"\n\
             \x20 vLLM, others: --base-url http://HOST:PORT/v1 --model NAME (or OPENAI_BASE_URL and CADLOOP_MODEL,\n\
             \x20               or [llm] base_url and model in cadloop.toml)", model = crate::llm::DEFAULT_OPENAI_MODEL)]
    NoEndpoint,
}

/// `cadloop.toml` as written by the user; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub executor: ExecutorFile,
    #[serde(default)]
    pub render: RenderFile,
    #[serde(default)]
    pub captioner: CaptionerFile,
    #[serde(default)]
    pub llm: LlmFile,
    #[serde(default)]
    pub generate: GenerateFile,
}

/// `[llm]`: the endpoint and how to ask it. The API key is never read from
/// the file: it comes from `OPENAI_API_KEY` only.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmFile {
    pub base_url: Option<String>,
    pub model: Option<String>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    pub timeout_secs: Option<f64>,
    pub retries: Option<u32>,
    /// First wait before a retry, in seconds; doubled each retry.
    pub backoff_secs: Option<f64>,
    /// Ask for replies as a stream of tokens; on unless set false.
    pub stream: Option<bool>,
    /// Seconds a streamed reply may go without a token.
    pub idle_timeout_secs: Option<f64>,
    /// When requests for code are held to their layout: never, reminders, always.
    pub constrain: Option<crate::llm::Constrain>,
}

/// `[generate]`: the loop's budgets and prompts.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateFile {
    pub max_repairs: Option<u32>,
    pub max_refines: Option<u32>,
    /// A folder of prompt templates replacing the built-in ones.
    pub prompts: Option<PathBuf>,
    /// Whether requests get checks (`--checks`); on unless set false.
    pub checks: Option<bool>,
}

/// `[captioner]` in cadloop.toml.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptionerFile {
    /// The model folder, when neither --captioner nor CADLOOP_CAPTIONER names one.
    pub model: Option<PathBuf>,
    /// Threads per ONNX Runtime session [default: number of cores].
    pub threads: Option<usize>,
    pub beams: Option<usize>,
    pub repetition_penalty: Option<f32>,
    pub prefix: Option<String>,
}

/// `[render]` in cadloop.toml.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenderFile {
    pub size: Option<u32>,
    pub supersample: Option<u32>,
    pub margin: Option<f32>,
}

/// `[executor]` in cadloop.toml.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutorFile {
    pub workers: Option<usize>,
    pub timeout_secs: Option<f64>,
    pub memory_limit_mib: Option<u64>,
    pub jobs_per_worker: Option<u32>,
    pub freecad_lib: Option<PathBuf>,
    /// Check generated code's imports against the allowed modules before it runs.
    pub import_check: Option<bool>,
    /// Modules allowed on top of the defaults.
    pub extra_imports: Option<Vec<String>>,
}

/// Executor values given on the command line; `None` falls back to the file, then defaults.
#[derive(Debug, Default, Clone)]
pub struct ExecutorFlags {
    pub workers: Option<usize>,
    pub timeout_secs: Option<f64>,
    pub memory_limit_mib: Option<u64>,
}

/// LLM values given on the command line (or their environment variables).
#[derive(Debug, Default, Clone)]
pub struct LlmFlags {
    pub base_url: Option<String>,
    pub model: Option<String>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    pub timeout_secs: Option<f64>,
    pub retries: Option<u32>,
    /// `--no-stream`: whole replies only.
    pub no_stream: bool,
    pub idle_timeout_secs: Option<f64>,
    pub constrain: Option<crate::llm::Constrain>,
}

/// The environment variables cadloop reads, named once for clap (`env = …`)
/// and for `cadloop doctor`, which must resolve settings as the commands do.
pub mod env {
    /// The settings file.
    pub const CONFIG: &str = "CADLOOP_CONFIG";
    /// The captioner model folder.
    pub const CAPTIONER: &str = "CADLOOP_CAPTIONER";
    /// The LLM endpoint's base URL.
    pub const BASE_URL: &str = "OPENAI_BASE_URL";
    /// The LLM model's name.
    pub const MODEL: &str = "CADLOOP_MODEL";
    /// The LLM API key (never written anywhere).
    pub const API_KEY: &str = "OPENAI_API_KEY";
}

/// The API key from `OPENAI_API_KEY`, when set and not blank.
pub fn api_key_from_env() -> Option<String> {
    std::env::var(env::API_KEY)
        .ok()
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty())
}

/// Merges LLM flags over the file over defaults and checks them. With no
/// base URL anywhere, an API key means OpenAI; neither is [`ConfigError::NoEndpoint`].
pub fn llm_settings(
    file: &LlmFile,
    flags: &LlmFlags,
    api_key: Option<String>,
) -> Result<LlmSettings, ConfigError> {
    let base_url = flags
        .base_url
        .clone()
        .or_else(|| file.base_url.clone())
        .map(|u| u.trim().trim_end_matches('/').to_string())
        .filter(|u| !u.is_empty());
    let base_url = match (base_url, &api_key) {
        (Some(url), _) => url,
        (None, Some(_)) => crate::llm::OPENAI_BASE_URL.to_string(),
        (None, None) => return Err(ConfigError::NoEndpoint),
    };
    match reqwest::Url::parse(&base_url) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
        _ => {
            return Err(invalid(
                "base URL",
                format!(
                    "{base_url:?} is not an http(s) address; give the API root, e.g. http://127.0.0.1:11434/v1"
                ),
            ))
        }
    }
    let model = match flags.model.clone().or_else(|| file.model.clone()) {
        Some(model) if !model.trim().is_empty() => model.trim().to_string(),
        _ if base_url == crate::llm::OPENAI_BASE_URL => crate::llm::DEFAULT_OPENAI_MODEL.to_string(),
        _ => {
            return Err(invalid(
                "model",
                format!(
                    "name the model {base_url} serves with --model (or CADLOOP_MODEL, or [llm] model), \
                     e.g. --model qwen2.5-coder:7b for Ollama"
                ),
            ))
        }
    };
    let temperature = flags.temperature.or(file.temperature);
    if matches!(temperature, Some(t) if !(0.0..=2.0).contains(&t)) {
        return Err(TEMPERATURE.invalid(
            flags.temperature.is_some(),
            format!(
                "{} is out of range; use 0 to 2",
                temperature.unwrap_or_default()
            ),
        ));
    }
    let max_tokens = flags.max_tokens.or(file.max_tokens);
    if matches!(max_tokens, Some(n) if n < 64) {
        return Err(MAX_TOKENS.invalid(
            flags.max_tokens.is_some(),
            "use at least 64: a script needs room",
        ));
    }
    let timeout_secs = flags.timeout_secs.or(file.timeout_secs).unwrap_or(300.0);
    if !(timeout_secs.is_finite() && (1.0..=3600.0).contains(&timeout_secs)) {
        return Err(REQUEST_TIMEOUT.invalid(
            flags.timeout_secs.is_some(),
            format!("{timeout_secs} s is out of range; use 1 to 3600"),
        ));
    }
    let retries = flags.retries.or(file.retries).unwrap_or(5);
    if retries > 20 {
        return Err(RETRIES.invalid(
            flags.retries.is_some(),
            format!("{retries} is too many; use 0 to 20"),
        ));
    }
    let backoff_secs = file.backoff_secs.unwrap_or(1.0);
    if !(backoff_secs.is_finite() && (0.0..=60.0).contains(&backoff_secs)) {
        return Err(BACKOFF.invalid(
            false,
            format!("{backoff_secs} s is out of range; use 0 to 60"),
        ));
    }
    let idle_secs = flags
        .idle_timeout_secs
        .or(file.idle_timeout_secs)
        .unwrap_or(crate::llm::DEFAULT_IDLE_TIMEOUT.as_secs_f64());
    if !(idle_secs.is_finite() && (1.0..=3600.0).contains(&idle_secs)) {
        return Err(IDLE_TIMEOUT.invalid(
            flags.idle_timeout_secs.is_some(),
            format!("{idle_secs} s is out of range; use 1 to 3600"),
        ));
    }
    Ok(LlmSettings {
        base_url,
        api_key,
        model,
        temperature,
        max_tokens,
        request_timeout: Duration::from_secs_f64(timeout_secs),
        retries,
        backoff: Duration::from_secs_f64(backoff_secs),
        stream: !flags.no_stream && file.stream.unwrap_or(true),
        idle_timeout: Duration::from_secs_f64(idle_secs),
        constrain: flags.constrain.or(file.constrain).unwrap_or_default(),
    })
}

/// Settings for a replayed run: no endpoint is asked.
pub fn replay_settings(recording: &Path) -> LlmSettings {
    LlmSettings {
        base_url: format!("replay:{}", recording.display()),
        api_key: None,
        model: "replay".into(),
        temperature: None,
        max_tokens: None,
        request_timeout: Duration::from_secs(300),
        retries: 0,
        backoff: Duration::ZERO,
        stream: false,
        idle_timeout: crate::llm::DEFAULT_IDLE_TIMEOUT,
        constrain: crate::llm::Constrain::Never,
    }
}

/// The loop's budgets: flags over the file over the defaults (3 and 3).
pub fn budget(
    file: &GenerateFile,
    max_repairs: Option<u32>,
    max_refines: Option<u32>,
) -> Result<Budget, ConfigError> {
    let defaults = Budget::default();
    let budget = Budget {
        max_repairs: max_repairs
            .or(file.max_repairs)
            .unwrap_or(defaults.max_repairs),
        max_refines: max_refines
            .or(file.max_refines)
            .unwrap_or(defaults.max_refines),
    };
    if budget.max_repairs > MAX_ROUNDS {
        return Err(MAX_REPAIRS.invalid(
            max_repairs.is_some(),
            format!("{} is too many; use 0 to {MAX_ROUNDS}", budget.max_repairs),
        ));
    }
    if budget.max_refines > MAX_ROUNDS {
        return Err(MAX_REFINES.invalid(
            max_refines.is_some(),
            format!("{} is too many; use 0 to {MAX_ROUNDS}", budget.max_refines),
        ));
    }
    Ok(budget)
}

/// Reads the settings file: the named one (which must exist), else
/// `./cadloop.toml` when present, else defaults.
pub fn load_file(named: Option<&Path>) -> Result<(FileConfig, Option<PathBuf>), ConfigError> {
    let path = match named {
        Some(path) => path.to_path_buf(),
        None => {
            let local = PathBuf::from(DEFAULT_CONFIG_FILE);
            if !local.exists() {
                return Ok((FileConfig::default(), None));
            }
            local
        }
    };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    let parsed = toml::from_str(&text).map_err(|err| ConfigError::Parse {
        path: path.clone(),
        message: err.to_string(),
    })?;
    Ok((parsed, Some(path)))
}

fn invalid(what: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        what: what.to_string(),
        message: message.into(),
    }
}

/// A checked setting: its name in messages, its flag (none for settings
/// only the file has) and its key in the settings file.
struct Setting {
    what: &'static str,
    flag: Option<&'static str>,
    key: &'static str,
}

impl Setting {
    /// A refusal naming where the value came from: the flag when it gave
    /// the value, else the settings file's key.
    fn invalid(&self, from_flag: bool, message: impl Into<String>) -> ConfigError {
        let source = match self.flag {
            Some(flag) if from_flag => flag.to_string(),
            _ => format!("{} in the settings file", self.key),
        };
        invalid(&format!("{} ({source})", self.what), message)
    }
}

const fn setting(what: &'static str, flag: &'static str, key: &'static str) -> Setting {
    Setting {
        what,
        flag: Some(flag),
        key,
    }
}

const TEMPERATURE: Setting = setting("temperature", "--temperature", "[llm] temperature");
const MAX_TOKENS: Setting = setting("max tokens", "--max-tokens", "[llm] max_tokens");
const REQUEST_TIMEOUT: Setting =
    setting("request timeout", "--request-timeout", "[llm] timeout_secs");
const RETRIES: Setting = setting("retries", "--retries", "[llm] retries");
const IDLE_TIMEOUT: Setting = setting("idle timeout", "--idle-timeout", "[llm] idle_timeout_secs");
const BACKOFF: Setting = Setting {
    what: "backoff",
    flag: None,
    key: "[llm] backoff_secs",
};
const MAX_REPAIRS: Setting = setting("max repairs", "--max-repairs", "[generate] max_repairs");
const MAX_REFINES: Setting = setting("max refines", "--max-refines", "[generate] max_refines");
const WORKERS: Setting = setting("workers", "--workers", "[executor] workers");
const TIMEOUT: Setting = setting("timeout", "--timeout", "[executor] timeout_secs");
const MEMORY_LIMIT: Setting = setting(
    "memory limit",
    "--memory-limit",
    "[executor] memory_limit_mib",
);
const JOBS_PER_WORKER: Setting = Setting {
    what: "jobs per worker",
    flag: None,
    key: "[executor] jobs_per_worker",
};
const BEAMS: Setting = setting("beams", "--beams", "[captioner] beams");
const REPETITION_PENALTY: Setting = setting(
    "repetition penalty",
    "--repetition-penalty",
    "[captioner] repetition_penalty",
);

/// Merges flags over the file over defaults and checks every value.
pub fn executor_settings(
    file: &ExecutorFile,
    flags: &ExecutorFlags,
) -> Result<ExecutorSettings, ConfigError> {
    let defaults =
        ExecutorSettings::with_defaults(std::env::current_exe().map_err(ConfigError::Exe)?);
    let workers = flags.workers.or(file.workers).unwrap_or(defaults.workers);
    if !(1..=256).contains(&workers) {
        return Err(WORKERS.invalid(
            flags.workers.is_some(),
            format!("{workers} is out of range; use 1 to 256"),
        ));
    }
    let timeout_secs = flags
        .timeout_secs
        .or(file.timeout_secs)
        .unwrap_or(defaults.timeout.as_secs_f64());
    if !(timeout_secs.is_finite() && timeout_secs > 0.0 && timeout_secs <= 86_400.0) {
        return Err(TIMEOUT.invalid(
            flags.timeout_secs.is_some(),
            format!(
                "{timeout_secs} s is not a usable time limit; give seconds between 0 and 86400"
            ),
        ));
    }
    let memory_limit_mib = flags
        .memory_limit_mib
        .or(file.memory_limit_mib)
        .unwrap_or(defaults.memory_limit_mib);
    if memory_limit_mib < 256 {
        return Err(MEMORY_LIMIT.invalid(
            flags.memory_limit_mib.is_some(),
            format!("{memory_limit_mib} MiB is too small to start FreeCAD; give at least 256"),
        ));
    }
    let jobs_per_worker = file.jobs_per_worker.unwrap_or(defaults.jobs_per_worker);
    if jobs_per_worker == 0 {
        return Err(JOBS_PER_WORKER.invalid(false, "must be at least 1"));
    }
    let extra = file.extra_imports.clone().unwrap_or_default();
    if let Some(bad) = extra
        .iter()
        .find(|m| m.is_empty() || !m.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
    {
        return Err(invalid(
            "executor.extra_imports",
            format!("{bad:?} is not a top-level module name (letters, digits, _)"),
        ));
    }
    let allowed_imports = if file.import_check.unwrap_or(true) {
        defaults
            .allowed_imports
            .iter()
            .cloned()
            .chain(extra)
            .collect()
    } else {
        Vec::new()
    };
    Ok(ExecutorSettings {
        workers,
        timeout: Duration::from_secs_f64(timeout_secs),
        memory_limit_mib,
        jobs_per_worker,
        freecad_lib: file.freecad_lib.clone().unwrap_or(defaults.freecad_lib),
        allowed_imports,
        ..defaults
    })
}

/// Merges the view size flag over the file over defaults and checks the values.
pub fn render_settings(
    file: &RenderFile,
    size: Option<u32>,
) -> Result<RenderSettings, ConfigError> {
    let defaults = RenderSettings::default();
    let settings = RenderSettings {
        size: size.or(file.size).unwrap_or(defaults.size),
        supersample: file.supersample.unwrap_or(defaults.supersample),
        margin: file.margin.unwrap_or(defaults.margin),
    };
    if !(16..=render::MAX_SIZE).contains(&settings.size) {
        return Err(invalid(
            "view size",
            format!(
                "{} px is out of range; use 16 to {}",
                settings.size,
                render::MAX_SIZE
            ),
        ));
    }
    if !(1..=4).contains(&settings.supersample)
        || settings.size * settings.supersample > render::MAX_SAMPLED_SIDE
    {
        return Err(invalid(
            "render.supersample",
            format!(
                "{} is out of range; use 1 to 4, with size × supersample ≤ {}",
                settings.supersample,
                render::MAX_SAMPLED_SIDE
            ),
        ));
    }
    if !(0.0..0.4).contains(&settings.margin) {
        return Err(invalid(
            "render.margin",
            format!("{} is out of range; use 0 to 0.4", settings.margin),
        ));
    }
    Ok(settings)
}

/// The captioner model folder: the flag (or CADLOOP_CAPTIONER), else the file's.
pub fn captioner_dir(flag: Option<&Path>, file: &CaptionerFile) -> Option<PathBuf> {
    flag.map(Path::to_path_buf).or_else(|| file.model.clone())
}

/// Decoding settings: flags over the file over defaults, checked.
pub fn decoding(
    file: &CaptionerFile,
    beams: Option<usize>,
    max_length: Option<usize>,
    repetition_penalty: Option<f32>,
    prefix: Option<String>,
) -> Result<Decoding, ConfigError> {
    let defaults = Decoding::default();
    let decoding = Decoding {
        beams: beams.or(file.beams).unwrap_or(defaults.beams),
        max_length,
        repetition_penalty: repetition_penalty
            .or(file.repetition_penalty)
            .unwrap_or(defaults.repetition_penalty),
        prefix: prefix.or_else(|| file.prefix.clone()),
    };
    if !(1..=16).contains(&decoding.beams) {
        return Err(BEAMS.invalid(
            beams.is_some(),
            format!("{} is out of range; use 1 to 16", decoding.beams),
        ));
    }
    if !(decoding.repetition_penalty.is_finite() && decoding.repetition_penalty > 0.0) {
        return Err(REPETITION_PENALTY.invalid(
            repetition_penalty.is_some(),
            format!(
                "{} is not usable; give a positive number (1 = none)",
                decoding.repetition_penalty
            ),
        ));
    }
    if matches!(decoding.max_length, Some(n) if !(2..=512).contains(&n)) {
        return Err(invalid(
            "max length (--max-length)",
            format!(
                "{} tokens is out of range; use 2 to 512",
                max_length.unwrap_or_default()
            ),
        ));
    }
    Ok(decoding)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_bad_values_name_themselves() {
        let file: FileConfig =
            toml::from_str("[executor]\nworkers = 3\ntimeout_secs = 5\nmemory_limit_mib = 1024\n")
                .unwrap();
        let flags = ExecutorFlags {
            timeout_secs: Some(2.5),
            ..Default::default()
        };
        let settings = executor_settings(&file.executor, &flags).unwrap();
        assert_eq!(settings.workers, 3);
        assert_eq!(settings.timeout, Duration::from_millis(2500));
        assert_eq!(settings.memory_limit_mib, 1024);

        let zero = ExecutorFlags {
            timeout_secs: Some(0.0),
            ..Default::default()
        };
        let err = executor_settings(&file.executor, &zero)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("timeout (--timeout):"), "{err}");
        let tiny = ExecutorFlags {
            memory_limit_mib: Some(10),
            ..Default::default()
        };
        let err = executor_settings(&file.executor, &tiny)
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least 256"), "{err}");

        // A bad value from the file names its key there.
        let file: FileConfig = toml::from_str("[executor]\nworkers = 0\n").unwrap();
        let err = executor_settings(&file.executor, &ExecutorFlags::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("workers ([executor] workers in the settings file): 0 is out of range"),
            "{err}"
        );
    }

    #[test]
    fn no_endpoint_is_an_error_that_shows_both_ways_to_configure_one() {
        let err = llm_settings(&LlmFile::default(), &LlmFlags::default(), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("OPENAI_API_KEY"), "{err}");
        assert!(
            err.contains("--base-url http://127.0.0.1:11434/v1 --model"),
            "{err}"
        );

        let openai =
            llm_settings(&LlmFile::default(), &LlmFlags::default(), Some("k".into())).unwrap();
        assert_eq!(openai.base_url, crate::llm::OPENAI_BASE_URL);
        assert_eq!(openai.model, crate::llm::DEFAULT_OPENAI_MODEL);

        let local = LlmFlags {
            base_url: Some("http://127.0.0.1:8080/v1/".into()),
            ..Default::default()
        };
        let err = llm_settings(&LlmFile::default(), &local, None)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("model:"), "{err}");
        let file: FileConfig = toml::from_str("[llm]\nmodel = \"coder\"\nretries = 2\n").unwrap();
        let settings = llm_settings(&file.llm, &local, None).unwrap();
        assert_eq!(settings.endpoint(), "http://127.0.0.1:8080/v1");
        assert_eq!((settings.model.as_str(), settings.retries), ("coder", 2));

        let bad = LlmFlags {
            base_url: Some("127.0.0.1:8080".into()),
            ..local
        };
        let err = llm_settings(&file.llm, &bad, None).unwrap_err().to_string();
        assert!(err.contains("not an http(s) address"), "{err}");
    }

    #[test]
    fn an_unknown_key_in_the_file_is_reported_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cadloop.toml");
        std::fs::write(&path, "[executor]\nworkers = 2\ntimeout = 5\n").unwrap();
        let err = load_file(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("cadloop.toml"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("unknown field `timeout`"), "{err}");
    }
}
