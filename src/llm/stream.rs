//! Reading a streamed reply (server-sent events of chat completion chunks):
//! the text as it grows, for whoever shows it, the time to the first token,
//! the rate after it, and a stream that goes quiet for too long or ends
//! before the reply does.

use std::time::{Duration, Instant};

use async_openai::error::OpenAIError;
use futures_util::StreamExt;
use serde::Deserialize;

use super::{WireMessage, WireUsage};

/// A streamed reply so far, as shown while it is written.
#[derive(Debug, Clone, Copy)]
pub struct Partial<'a> {
    pub text: &'a str,
    /// Chunks with text received: one token each on llama.cpp, vLLM and OpenAI.
    pub tokens: u64,
    /// Tokens a second since the first one.
    pub tokens_per_second: Option<f64>,
}

/// Told each time a streamed reply grows.
pub type OnText<'a> = &'a (dyn Fn(Partial<'_>) + Send + Sync);

/// One chunk of a streamed chat completion, read leniently.
#[derive(Debug, Deserialize)]
pub(super) struct WireChunk {
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    model: Option<String>,
    /// An error the server sends in the stream after it began.
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: Option<WireMessage>,
    #[serde(default)]
    finish_reason: Option<String>,
}

/// A streamed reply read to its end.
#[derive(Debug, Default)]
pub(super) struct Streamed {
    /// Whether it came as a stream (else as one whole reply).
    pub streamed: bool,
    pub content: String,
    pub usage: Option<WireUsage>,
    pub model: Option<String>,
    pub finish_reason: Option<String>,
    pub tokens: u64,
    pub first_token: Option<Duration>,
    pub tokens_per_second: Option<f64>,
}

/// Why a stream gave no whole reply.
#[derive(Debug)]
pub(super) enum StreamFailure {
    /// No chunk came for `idle`; `tokens` had come before.
    Quiet { idle: Duration, tokens: u64 },
    /// The stream broke off or ended before the reply said it was done: a
    /// failed try, retried like a 5xx.
    Cut(String),
    /// The server sent an error inside the stream.
    Error(String),
    /// The stream ended before its first event: llama-cpp-python's way of
    /// refusing a request once it has begun a stream (a prompt too long
    /// for its window, say), the reason left in its log.
    Empty,
}

/// Reads `stream` to its end, telling `on_text` as the text grows; a gap
/// of `idle` between chunks (or before the first) fails.
pub(super) async fn read<S>(
    mut stream: S,
    started: Instant,
    idle: Duration,
    on_text: Option<OnText<'_>>,
) -> Result<Streamed, StreamFailure>
where
    S: futures_util::Stream<Item = Result<WireChunk, OpenAIError>> + Unpin,
{
    let mut got = Streamed {
        streamed: true,
        ..Streamed::default()
    };
    let mut first_at: Option<Instant> = None;
    let mut events = 0u64;
    loop {
        let next = match tokio::time::timeout(idle, stream.next()).await {
            Err(_) => {
                return Err(StreamFailure::Quiet {
                    idle,
                    tokens: got.tokens,
                })
            }
            Ok(None) if events == 0 => return Err(StreamFailure::Empty),
            Ok(None) => break,
            Ok(Some(Err(err))) => return Err(StreamFailure::Cut(crate::error_chain(&err))),
            Ok(Some(Ok(chunk))) => chunk,
        };
        events += 1;
        if let Some(error) = next.error {
            let message = error
                .get("message")
                .and_then(|m| m.as_str())
                .map_or_else(|| error.to_string(), str::to_string);
            return Err(StreamFailure::Error(message));
        }
        if next.usage.is_some() {
            got.usage = next.usage;
        }
        if next.model.is_some() {
            got.model = next.model;
        }
        let Some(choice) = next.choices.into_iter().next() else {
            continue;
        };
        if choice.finish_reason.is_some() {
            got.finish_reason = choice.finish_reason;
        }
        let text = choice.delta.and_then(|d| d.content).unwrap_or_default();
        if text.is_empty() {
            continue;
        }
        let now = Instant::now();
        let first = *first_at.get_or_insert(now);
        got.first_token.get_or_insert(now - started);
        got.tokens += 1;
        got.content.push_str(&text);
        got.tokens_per_second = rate(got.tokens, now - first);
        if let Some(on_text) = on_text {
            on_text(Partial {
                text: &got.content,
                tokens: got.tokens,
                tokens_per_second: got.tokens_per_second,
            });
        }
    }
    if got.finish_reason.is_none() {
        return Err(StreamFailure::Cut(format!(
            "the stream ended after {} tokens without saying the reply was done",
            got.tokens
        )));
    }
    Ok(got)
}

/// Tokens a second after the first token: the tokens after it over the time
/// they took; `None` until there is a gap to measure.
fn rate(tokens: u64, since_first: Duration) -> Option<f64> {
    let secs = since_first.as_secs_f64();
    (tokens > 1 && secs > 0.0).then(|| (tokens - 1) as f64 / secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(text: Option<&str>, finish: Option<&str>) -> Result<WireChunk, OpenAIError> {
        let mut value = serde_json::json!({"choices": [{"delta": {}, "finish_reason": finish}]});
        if let Some(text) = text {
            value["choices"][0]["delta"]["content"] = text.into();
        }
        Ok(serde_json::from_value(value).unwrap())
    }

    #[tokio::test]
    async fn a_stream_is_read_whole_and_told_as_it_grows() {
        let chunks = vec![
            chunk(Some("```python\n"), None),
            chunk(Some("x = 1\n"), None),
            chunk(None, None),
            chunk(Some("```"), Some("stop")),
        ];
        let seen = std::sync::Mutex::new(Vec::new());
        let on_text = |p: Partial<'_>| seen.lock().unwrap().push((p.text.to_string(), p.tokens));
        let got = read(
            futures_util::stream::iter(chunks),
            Instant::now(),
            Duration::from_secs(5),
            Some(&on_text),
        )
        .await
        .unwrap();
        assert_eq!(got.content, "```python\nx = 1\n```");
        assert_eq!(got.tokens, 3);
        assert_eq!(got.finish_reason.as_deref(), Some("stop"));
        assert!(got.first_token.is_some());
        let seen = seen.into_inner().unwrap();
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[1], ("```python\nx = 1\n".to_string(), 2));
    }

    #[tokio::test]
    async fn a_stream_without_an_end_is_cut() {
        let chunks = vec![chunk(Some("```python\n"), None)];
        let failed = read(
            futures_util::stream::iter(chunks),
            Instant::now(),
            Duration::from_secs(5),
            None,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(failed, StreamFailure::Cut(ref m) if m.contains("after 1 tokens")),
            "{failed:?}"
        );
    }

    #[tokio::test]
    async fn a_stream_with_no_event_is_empty_not_cut() {
        let failed = read(
            futures_util::stream::iter(Vec::new()),
            Instant::now(),
            Duration::from_secs(5),
            None,
        )
        .await
        .unwrap_err();
        assert!(matches!(failed, StreamFailure::Empty), "{failed:?}");
    }

    #[tokio::test]
    async fn a_quiet_stream_fails_after_the_idle_time() {
        let stream = futures_util::stream::iter(vec![chunk(Some("a"), None)])
            .chain(futures_util::stream::pending());
        let failed = read(stream, Instant::now(), Duration::from_millis(50), None)
            .await
            .unwrap_err();
        assert!(
            matches!(failed, StreamFailure::Quiet { tokens: 1, .. }),
            "{failed:?}"
        );
    }

    #[test]
    fn the_rate_counts_the_tokens_after_the_first() {
        assert_eq!(rate(1, Duration::from_secs(1)), None);
        assert_eq!(rate(11, Duration::from_secs(2)), Some(5.0));
        assert_eq!(rate(5, Duration::ZERO), None);
    }
}
