//! The model's context window: what kind of server answers, how many tokens
//! it holds, whether a prompt fits, and whether a reply shows the prompt was
//! cut to fit without a word.
//!
//! Servers tell their window in their own ways, each asked once per client:
//! llama.cpp's `llama-server` in `GET /props`, Ollama in `POST /api/show`
//! (the model's `num_ctx`; without one the window is the server's
//! `OLLAMA_CONTEXT_LENGTH`, which cannot be asked, so it stays unknown and
//! only a silent cut is watched for), vLLM in
//! `GET /v1/models` (`max_model_len`). llama-cpp-python tells it only when
//! it refuses a prompt (HTTP 400 `context_length_exceeded`), which the client
//! reads too. OpenAI's endpoint is not asked.

use std::time::Duration;

use serde_json::Value;

/// A prompt's tokens are counted as its characters over this (English and
/// Python run 3.5 to 4.5 characters a token in the common tokenizers).
pub const CHARS_PER_TOKEN: f64 = 4.0;
/// Reply tokens a prompt must leave free in the window, at least.
pub const MIN_REPLY_TOKENS: u32 = 256;
/// Tokens a chat template adds around each message, about.
const TOKENS_PER_MESSAGE: u32 = 8;
/// A server that read fewer of the prompt's tokens than this share of the
/// estimate cut it.
const CUT_SHARE: f64 = 0.6;
/// The probes' time limit each: a server that is slow to say leaves the
/// window unknown.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Which server answers, as far as its endpoints tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    LlamaServer,
    LlamaCppPython,
    Ollama,
    Vllm,
    Other,
}

impl ServerKind {
    /// How to give this server a larger window.
    pub fn fix(self) -> &'static str {
        match self {
            ServerKind::LlamaServer => {
                "start llama-server with a larger --ctx-size (-c), e.g. -c 8192"
            }
            ServerKind::LlamaCppPython => {
                "start llama_cpp.server with a larger --n_ctx, e.g. --n_ctx 8192"
            }
            ServerKind::Ollama => {
                "raise the model's num_ctx: `PARAMETER num_ctx 8192` in a Modelfile \
                 (ollama create), or OLLAMA_CONTEXT_LENGTH=8192 for the whole server"
            }
            ServerKind::Vllm => "start vLLM with a larger --max-model-len, e.g. 8192",
            ServerKind::Other => {
                "give the model a larger context window in the server's settings \
                 (8192 tokens is enough for cadloop), or use a model with one"
            }
        }
    }

    /// The server's name, as messages give it.
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::LlamaServer => "llama.cpp's llama-server",
            ServerKind::LlamaCppPython => "llama-cpp-python",
            ServerKind::Ollama => "Ollama",
            ServerKind::Vllm => "vLLM",
            ServerKind::Other => "the server",
        }
    }
}

/// What the endpoint told of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub kind: ServerKind,
    /// The context window in tokens, when the server tells it.
    pub window: Option<u32>,
    /// Where the window was read, for messages: "GET /props", "Ollama's default".
    pub told_by: &'static str,
}

impl Endpoint {
    /// An endpoint that says nothing of itself.
    pub fn unknown() -> Endpoint {
        Endpoint {
            kind: ServerKind::Other,
            window: None,
            told_by: "",
        }
    }
}

/// A prompt's size in tokens, estimated from its characters and messages.
pub fn estimate_tokens<'a>(texts: impl IntoIterator<Item = &'a str>) -> u32 {
    let (mut chars, mut messages) = (0usize, 0u32);
    for text in texts {
        chars += text.chars().count();
        messages += 1;
    }
    (chars as f64 / CHARS_PER_TOKEN).ceil() as u32 + messages * TOKENS_PER_MESSAGE
}

/// The reply's token budget in a window: `asked` (or the rest of the
/// window), cut to what the prompt leaves; `Err(left)` when it leaves less
/// than [`MIN_REPLY_TOKENS`].
pub fn reply_budget(window: u32, prompt: u32, asked: Option<u32>) -> Result<Option<u32>, u32> {
    let left = window.saturating_sub(prompt);
    if left < MIN_REPLY_TOKENS {
        return Err(left);
    }
    Ok(match asked {
        Some(asked) if asked <= left => Some(asked),
        // Asking for more than fits makes llama.cpp refuse the request.
        _ => Some(left),
    })
}

/// Whether a server that says it read `used` tokens of a prompt estimated
/// at `estimate` cut it.
pub fn was_cut(used: u64, estimate: u32) -> bool {
    used > 0 && (used as f64) < estimate as f64 * CUT_SHARE
}

/// The window a refusal names: llama-cpp-python's and OpenAI's "maximum
/// context length is N tokens", llama-server's "the request exceeds the
/// available context size (N tokens)".
pub fn window_in_refusal(message: &str) -> Option<u32> {
    let lower = message.to_lowercase();
    let after = [
        "maximum context length is",
        "context size (",
        "context length of",
    ]
    .iter()
    .find_map(|key| lower.find(key).map(|at| &lower[at + key.len()..]))?;
    let digits: String = after
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// Asks the endpoint what it is and how large its window is. Never fails:
/// a server that tells nothing is [`Endpoint::unknown`].
pub async fn probe(
    client: &reqwest::Client,
    base_url: &str,
    model: &str,
    api_key: Option<&str>,
) -> Endpoint {
    let base = base_url.trim_end_matches('/');
    let root = base.strip_suffix("/v1").unwrap_or(base);
    // The endpoint's own key goes with its probes (vLLM's --api-key guards /v1/models).
    let http = |request: reqwest::RequestBuilder| match api_key {
        Some(key) => request.bearer_auth(key),
        None => request,
    };
    // A server that cannot be reached is not asked again: the request says why.
    let props = http(client.get(format!("{root}/props")));
    let props = match props.timeout(PROBE_TIMEOUT).send().await {
        Ok(response) if response.status().is_success() => response.json::<Value>().await.ok(),
        Ok(_) => None,
        Err(_) => return Endpoint::unknown(),
    };
    if let Some(props) = props {
        let n_ctx = props
            .pointer("/default_generation_settings/n_ctx")
            .or_else(|| props.get("n_ctx"))
            .and_then(Value::as_u64);
        if let Some(n_ctx) = n_ctx {
            return Endpoint {
                kind: ServerKind::LlamaServer,
                window: Some(n_ctx as u32),
                told_by: "GET /props",
            };
        }
    }
    let show =
        http(client.post(format!("{root}/api/show"))).json(&serde_json::json!({ "model": model }));
    if let Some(show) = get_json(show).await {
        if show.get("model_info").is_some() || show.get("parameters").is_some() {
            let num_ctx = show
                .get("parameters")
                .and_then(Value::as_str)
                .and_then(|p| {
                    p.lines().find_map(|line| {
                        let mut words = line.split_whitespace();
                        (words.next() == Some("num_ctx"))
                            .then(|| words.next()?.parse::<u32>().ok())
                            .flatten()
                    })
                });
            return Endpoint {
                kind: ServerKind::Ollama,
                window: num_ctx,
                told_by: "the model's num_ctx (POST /api/show)",
            };
        }
    }
    if let Some(models) = get_json(http(client.get(format!("{base}/models")))).await {
        let listed = models
            .get("data")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let this = listed
            .iter()
            .find(|m| m.get("id").and_then(Value::as_str) == Some(model))
            .or(listed.first());
        if let Some(len) = this
            .and_then(|m| m.get("max_model_len"))
            .and_then(Value::as_u64)
        {
            return Endpoint {
                kind: ServerKind::Vllm,
                window: Some(len as u32),
                told_by: "max_model_len (GET /v1/models)",
            };
        }
    }
    let count = http(client.post(format!("{root}/extras/tokenize/count")))
        .json(&serde_json::json!({ "input": "cadloop" }));
    if get_json(count)
        .await
        .is_some_and(|v| v.get("count").is_some())
    {
        return Endpoint {
            kind: ServerKind::LlamaCppPython,
            window: None,
            told_by: "",
        };
    }
    Endpoint::unknown()
}

/// A probe's JSON answer; `None` for anything but a 2xx with JSON.
async fn get_json(request: reqwest::RequestBuilder) -> Option<Value> {
    let response = request.timeout(PROBE_TIMEOUT).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json().await.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_their_window() {
        let python = "This model's maximum context length is 4096 tokens. However, you requested 5041 tokens";
        assert_eq!(window_in_refusal(python), Some(4096));
        let server =
            "the request exceeds the available context size (2048 tokens), try increasing it";
        assert_eq!(window_in_refusal(server), Some(2048));
        assert_eq!(window_in_refusal("model not found"), None);
    }

    #[test]
    fn the_reply_gets_what_the_prompt_leaves() {
        assert_eq!(reply_budget(8192, 3000, Some(2000)), Ok(Some(2000)));
        assert_eq!(reply_budget(4096, 3000, Some(2000)), Ok(Some(1096)));
        assert_eq!(reply_budget(4096, 3000, None), Ok(Some(1096)));
        assert_eq!(reply_budget(2048, 3000, None), Err(0));
        assert_eq!(reply_budget(3100, 3000, None), Err(100));
    }

    #[test]
    fn a_prompt_read_far_shorter_than_sent_was_cut() {
        let estimate = estimate_tokens(["x".repeat(8000).as_str(), "y".repeat(400).as_str()]);
        assert_eq!(estimate, 2100 + 16);
        assert!(!was_cut(2000, estimate));
        assert!(!was_cut(0, estimate), "no usage says nothing");
        assert!(was_cut(1024, estimate));
    }
}
