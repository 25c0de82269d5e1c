//! The LLM client: chat requests to any OpenAI-compatible endpoint (OpenAI,
//! Ollama, vLLM, llama.cpp's server) through async-openai, with retries, and
//! the code pulled out of a reply.
//!
//! Stage in the flow: `pipeline` sends the filled `prompts` here and gets back
//! text, token counts and timings; [`ReplyText`] reads the text: the FreeCAD
//! Python for the executor, the checks, the critique's statements.
//!
//! Retries live in a tower service under async-openai's client, so they see
//! the HTTP status and the `Retry-After` header: 429, 5xx, timeouts and
//! connection errors are retried with exponential backoff and jitter, up to a
//! budget; anything else fails at once. Replies are read leniently (only
//! `choices[].message.content` and `usage` are needed), since local servers
//! leave out fields OpenAI sends.
//!
//! Before the first request the client asks the endpoint what it is and how
//! large its context window is ([`window`]); a prompt that does not fit
//! stops with the window, the prompt's size and the fix, the reply's token
//! budget is cut to what the prompt leaves, and a reply showing the server
//! read far less of the prompt than was sent (a silent cut) stops too.
//!
//! Replies are streamed where the server streams: the caller is told the
//! text as it grows, a stream that goes quiet for `idle_timeout` fails, and
//! the time to the first token and the rate after it are kept with the
//! reply. Requests for code are held to their layout where the server takes
//! a grammar ([`form`]). A server that refuses either is asked again without
//! it, and the client remembers not to ask it so again.
//!
//! `reading`: the one reader of a reply's layout (code, checks, statements).
//! `record`: `--record` and `--replay`. `stream`: reading a streamed reply.

pub mod form;
mod reading;
mod record;
mod stream;
pub mod window;

use std::cell::RefCell;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::middleware::HttpRequestFactory;
use async_openai::types::chat::{
    ChatCompletionRequestAssistantMessage, ChatCompletionRequestMessage,
    ChatCompletionRequestSystemMessage, ChatCompletionRequestUserMessage,
    ChatCompletionStreamOptions, CreateChatCompletionRequest,
};
use serde::{Deserialize, Serialize};

pub use form::{Constrain, Form};
pub use reading::{Lines, ReplyText};
pub use record::Recording;
use record::{Recorder, Replay};
pub use stream::{OnText, Partial};
use stream::{StreamFailure, Streamed, WireChunk};

/// OpenAI's endpoint, used when no base URL is given.
pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
/// The model asked for at OpenAI when none is named.
pub const DEFAULT_OPENAI_MODEL: &str = "gpt-4.1-mini";

/// Where and how to ask.
#[derive(Debug, Clone)]
pub struct LlmSettings {
    /// The API root, e.g. `http://127.0.0.1:11434/v1`.
    pub base_url: String,
    /// Sent as a bearer token when set.
    pub api_key: Option<String>,
    pub model: String,
    /// `None` leaves the server's default.
    pub temperature: Option<f32>,
    /// Most tokens in one reply; `None` leaves the server's default.
    pub max_tokens: Option<u32>,
    /// Limit for one HTTP request, the reply included.
    pub request_timeout: Duration,
    /// Retries after the first request fails with a retryable error.
    pub retries: u32,
    /// First backoff delay; doubled each retry, jittered, capped at [`MAX_BACKOFF`].
    pub backoff: Duration,
    /// Ask for replies as a stream of tokens (whole replies where the server refuses).
    pub stream: bool,
    /// A streamed reply with no token for this long fails.
    pub idle_timeout: Duration,
    /// When a request for code is held to its layout, where the server can be.
    pub constrain: Constrain,
}

/// The longest a streamed reply may go without a token, unless set.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// How much longer than the idle timeout the transport waits on a silent
/// read of a stream before it gives up itself.
const STREAM_READ_MARGIN: Duration = Duration::from_secs(5);

/// The longest wait between two tries, `Retry-After` included.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

impl LlmSettings {
    /// The base URL without a trailing slash, as messages show it.
    pub fn endpoint(&self) -> &str {
        self.base_url.trim_end_matches('/')
    }
}

/// Who says a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Message {
        Message {
            role: Role::System,
            content: content.into(),
        }
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Message {
        Message {
            role: Role::User,
            content: content.into(),
        }
    }

    /// An assistant message (an earlier reply, in a conversation).
    pub fn assistant(content: impl Into<String>) -> Message {
        Message {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// Tokens as the server counted them (zero when it does not say).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, other: Usage) {
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.total_tokens += other.total_tokens;
    }
}

/// A reply and what it cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub content: String,
    pub usage: Usage,
    /// The model the server says answered.
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    /// Failed tries before this reply.
    pub retries: u32,
    pub elapsed_ms: f64,
    /// Whether the reply came as a stream of tokens.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub streamed: bool,
    /// Time from the request to the first token of a streamed reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_token_ms: Option<f64>,
    /// Tokens a second after the first one, of a streamed reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_second: Option<f64>,
    /// How the reply was held to its layout ("grammar"), when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constrained: Option<String>,
}

/// The endpoint could not give a reply.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("cannot reach the LLM endpoint {url} ({tries} tries)")]
    Unreachable {
        url: String,
        tries: u32,
        #[source]
        source: reqwest::Error,
    },
    #[error("the LLM endpoint {url} did not answer within {timeout:?} ({tries} tries)")]
    Timeout {
        url: String,
        timeout: Duration,
        tries: u32,
    },
    #[error("the LLM endpoint {url} answered HTTP {status} ({tries} tries): {message}")]
    Status {
        url: String,
        status: u16,
        tries: u32,
        message: String,
    },
    #[error("the LLM endpoint {url} sent a reply cadloop cannot read: {message}")]
    Malformed { url: String, message: String },
    #[error(
        "the LLM endpoint {url} sent a reply cadloop cannot read (not the expected JSON): {body}"
    )]
    Undecodable {
        url: String,
        body: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "the prompt (about {prompt} tokens) leaves no room for a reply in {server}'s context window \
         of {window} tokens ({told_by}) at {url}: {fix}"
    )]
    ContextWindow {
        url: String,
        server: &'static str,
        window: u32,
        prompt: u32,
        told_by: &'static str,
        fix: &'static str,
    },
    #[error(
        "{server} at {url} read only {used} tokens of a prompt of about {prompt}: it cut the prompt \
         to fit its context window without saying so, and the model never saw the rest; {fix}"
    )]
    PromptCut {
        url: String,
        server: &'static str,
        used: u64,
        prompt: u32,
        fix: &'static str,
    },
    #[error(
        "the LLM endpoint {url} sent no token for {} s ({tokens} tokens of the reply had come): \
         the server is stuck, or too slow for this prompt; raise --idle-timeout, or give \
         --no-stream to wait for whole replies within --request-timeout",
        idle.as_secs_f64()
    )]
    Quiet {
        url: String,
        idle: Duration,
        tokens: u64,
    },
    #[error("the LLM endpoint {url} broke off its reply ({tries} tries): {message}")]
    Cut {
        url: String,
        tries: u32,
        message: String,
    },
    #[error("the LLM endpoint {url} failed in the middle of its reply: {message}")]
    InStream { url: String, message: String },
    #[error("cannot set up the HTTP client for {url}")]
    Client {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the LLM request to {url} failed")]
    Request {
        url: String,
        #[source]
        source: Box<OpenAIError>,
    },
    #[error("{}: no recorded reply for the request that begins {request:?}; record the run again with --record", file.display())]
    NotRecorded { file: PathBuf, request: String },
    #[error("cannot {action} the recording {}", file.display())]
    RecordingFile {
        file: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: line {line} is not a recorded exchange", file.display())]
    RecordingLine {
        file: PathBuf,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
}

impl LlmError {
    /// A hint for the user when the problem is the set-up rather than the server's mood.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            LlmError::Unreachable { .. } => Some(
                "is the server running? Give its address with --base-url (or OPENAI_BASE_URL), \
                 e.g. http://127.0.0.1:11434/v1 for Ollama or http://127.0.0.1:8080/v1 for llama.cpp",
            ),
            LlmError::Status { status: 401, .. } | LlmError::Status { status: 403, .. } => {
                Some("check OPENAI_API_KEY")
            }
            LlmError::Status { status: 404, .. } => Some(
                "check --base-url (it usually ends in /v1) and --model (the server must know it)",
            ),
            _ => None,
        }
    }
}

/// What happened to the tries of one call, seen by the retry service.
#[derive(Debug, Default, Clone)]
struct CallLog {
    tries: u32,
    last_status: Option<u16>,
    timed_out: bool,
    /// The last whole body read: a server that answers a request for a
    /// stream with one JSON reply is read from it.
    body: Option<Vec<u8>>,
}

tokio::task_local! {
    static CALL_LOG: RefCell<CallLog>;
}

type HttpFuture = Pin<Box<dyn Future<Output = Result<reqwest::Response, OpenAIError>> + Send>>;

/// The HTTP layer under async-openai: one request, retried as the settings say.
#[derive(Clone)]
struct RetryingHttp {
    http: reqwest::Client,
    retries: u32,
    backoff: Duration,
}

impl tower::Service<HttpRequestFactory> for RetryingHttp {
    type Response = reqwest::Response;
    type Error = OpenAIError;
    type Future = HttpFuture;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, factory: HttpRequestFactory) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { this.send(factory).await })
    }
}

impl RetryingHttp {
    async fn send(self, factory: HttpRequestFactory) -> Result<reqwest::Response, OpenAIError> {
        let mut retry = 0;
        loop {
            let request = factory.build().await?;
            // A reply is read whole here, so a connection that drops in the
            // middle of its body is a failed try like a 5xx. A stream is
            // passed on unread: its reader retries it.
            let mut body = None;
            let (result, cut) = match self.http.execute(request).await {
                Ok(response) if response.status().is_success() && !is_stream(&response) => {
                    match read_whole(response).await {
                        Ok((response, bytes, whole)) => {
                            body = Some(bytes);
                            (Ok(response), !whole)
                        }
                        Err(err) => (Err(err), false),
                    }
                }
                other => (other, false),
            };
            note(|log| {
                log.body = body;
                log.tries += 1;
                log.last_status = result.as_ref().ok().map(|r| r.status().as_u16());
                log.timed_out = matches!(&result, Err(e) if e.is_timeout());
            });
            let asked_delay = match &result {
                Ok(_) if cut => None,
                Ok(response) if retryable_status(response.status().as_u16()) => {
                    retry_after(response.headers())
                }
                Ok(_) => return result.map_err(OpenAIError::Reqwest),
                Err(err) if transient(err) => None,
                Err(_) => return result.map_err(OpenAIError::Reqwest),
            };
            if retry >= self.retries {
                return result.map_err(OpenAIError::Reqwest);
            }
            let delay = match asked_delay {
                Some(asked) if asked > MAX_BACKOFF => {
                    // The server wants a longer pause than cadloop waits: give up now.
                    return result.map_err(OpenAIError::Reqwest);
                }
                Some(asked) => asked,
                None => backoff_delay(self.backoff, retry),
            };
            tracing::warn!(
                status = result.as_ref().ok().map(|r| r.status().as_u16()),
                error = match &result {
                    Err(err) => Some(crate::error_chain(err)),
                    Ok(_) if cut => Some("the reply's body ends before it is complete".to_string()),
                    Ok(_) => None,
                },
                retry = retry + 1,
                of = self.retries,
                wait_ms = delay.as_millis() as u64,
                "LLM request failed; retrying"
            );
            tokio::time::sleep(delay).await;
            retry += 1;
        }
    }
}

fn note(update: impl FnOnce(&mut CallLog)) {
    let _ = CALL_LOG.try_with(|log| update(&mut log.borrow_mut()));
}

/// A failure of the connection rather than of the request: refused, timed
/// out, dropped before the reply or in the middle of its body.
fn transient(err: &reqwest::Error) -> bool {
    err.is_connect() || err.is_timeout() || err.is_request() || err.is_body() || err.is_decode()
}

/// Whether a response is a stream of server-sent events.
fn is_stream(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

/// The response with its body read to the end (a body cut short is an
/// error), the body, and whether it is whole: a JSON body that does not
/// parse was cut too, by a server that ends a body without a length by
/// closing.
async fn read_whole(
    response: reqwest::Response,
) -> Result<(reqwest::Response, Vec<u8>, bool), reqwest::Error> {
    let status = response.status();
    let version = response.version();
    let headers = response.headers().clone();
    let json = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    let bytes = response.bytes().await?;
    let whole = !json || serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok();
    let kept = bytes.to_vec();
    let mut read = http::Response::new(bytes);
    *read.status_mut() = status;
    *read.version_mut() = version;
    *read.headers_mut() = headers;
    Ok((reqwest::Response::from(read), kept, whole))
}

fn retryable_status(status: u16) -> bool {
    status == 429 || status == 408 || (500..600).contains(&status)
}

/// `Retry-After` as seconds (integer or decimal) or an HTTP date.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// `base · 2^retry`, capped, then scaled by a random factor in [0.5, 1) so
/// that clients that failed together do not retry together.
fn backoff_delay(base: Duration, retry: u32) -> Duration {
    let full = base.saturating_mul(1u32 << retry.min(16)).min(MAX_BACKOFF);
    full.mul_f64(0.5 + fastrand::f64() * 0.5)
}

/// A client for one endpoint and model, or for a recording (`--replay`).
#[derive(Clone)]
pub struct LlmClient {
    /// For whole replies, each within the request timeout.
    client: async_openai::Client<OpenAIConfig>,
    /// For streamed replies, limited by their silences.
    streaming: async_openai::Client<OpenAIConfig>,
    /// For asking the endpoint about itself.
    http: reqwest::Client,
    /// What the endpoint told of itself, asked before the first request.
    endpoint: Arc<tokio::sync::OnceCell<window::Endpoint>>,
    /// What the endpoint refused.
    learned: Arc<Learned>,
    settings: LlmSettings,
    replay: Option<Arc<Replay>>,
    recorder: Option<Arc<Recorder>>,
}

impl std::fmt::Debug for LlmClient {
    // Written by hand: the async-openai client holds the API key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmClient")
            .field("endpoint", &self.settings.endpoint())
            .field("model", &self.settings.model)
            .finish_non_exhaustive()
    }
}

/// One request: the messages, and how to ask and show the reply.
#[derive(Clone, Copy)]
pub struct Ask<'a> {
    pub messages: &'a [Message],
    /// Another model of the same endpoint; `None`: the configured one.
    pub model: Option<&'a str>,
    /// The layout the reply is asked for in.
    pub form: Form,
    /// Whether this asks again after a reply that lacked what was asked.
    pub reminder: bool,
    /// Told the text of a streamed reply as it grows.
    pub on_text: Option<OnText<'a>>,
}

impl<'a> Ask<'a> {
    /// A request for a free reply to `messages`, from the configured model.
    pub fn new(messages: &'a [Message]) -> Ask<'a> {
        Ask {
            messages,
            model: None,
            form: Form::Free,
            reminder: false,
            on_text: None,
        }
    }
}

/// What an endpoint refused, so it is not asked so again.
#[derive(Debug, Default)]
struct Learned {
    no_stream: AtomicBool,
    no_grammar: AtomicBool,
}

/// Why one request gave no reply.
enum Failed {
    Http(OpenAIError),
    Stream(StreamFailure),
    Malformed(String),
}

/// The server's message when it refused the request as asked (a 400, 422,
/// 500 or 501 that is not about the context window): a field it does not
/// take, the grammar, the stream.
fn refusal(err: &OpenAIError) -> Option<String> {
    let OpenAIError::ApiError(api) = err else {
        return None;
    };
    let message = api.api_error.to_string();
    let refused = matches!(api.status_code.as_u16(), 400 | 422 | 500 | 501);
    (refused && window::window_in_refusal(&message).is_none()).then_some(message)
}

/// Whether a refusal is about streaming.
fn names_stream(message: &str) -> bool {
    message.to_lowercase().contains("stream")
}

/// The reply as cadloop reads it: everything but the text and the counts may be missing.
#[derive(Debug, Deserialize)]
struct WireReply {
    #[serde(default)]
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    model: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireChoice {
    message: WireMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireMessage {
    #[serde(default)]
    content: Option<String>,
}

impl WireReply {
    /// The first choice, as a stream read to its end would give it.
    fn into_streamed(self) -> Result<Streamed, Failed> {
        let Some(choice) = self.choices.into_iter().next() else {
            return Err(Failed::Malformed("the reply has no choices".into()));
        };
        Ok(Streamed {
            content: choice.message.content.unwrap_or_default(),
            usage: self.usage,
            model: self.model,
            finish_reason: choice.finish_reason,
            ..Streamed::default()
        })
    }
}

#[derive(Debug, Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    total_tokens: Option<u64>,
}

impl LlmClient {
    /// A client for `settings`' endpoint, recording or replaying as `recording` says.
    pub fn new(settings: LlmSettings, recording: &Recording) -> Result<LlmClient, LlmError> {
        let build = |builder: reqwest::ClientBuilder| {
            builder
                .connect_timeout(settings.request_timeout.min(Duration::from_secs(10)))
                .user_agent(concat!("cadloop/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|source| LlmError::Client {
                    url: settings.endpoint().to_string(),
                    source,
                })
        };
        // A whole reply must come within the request's limit. A stream
        // that keeps sending tokens may take longer (a local model writing
        // a long script on a CPU): it is limited by its silences instead,
        // which the stream's reader times first; the transport's own
        // limit on a silent read is a backstop a little beyond it.
        let http = build(reqwest::Client::builder().timeout(settings.request_timeout))?;
        let streaming_http = build(
            reqwest::Client::builder().read_timeout(settings.idle_timeout + STREAM_READ_MARGIN),
        )?;
        let config = OpenAIConfig::new()
            .with_api_base(settings.endpoint())
            .with_api_key(settings.api_key.clone().unwrap_or_default());
        let service = |http: &reqwest::Client| RetryingHttp {
            http: http.clone(),
            retries: settings.retries,
            backoff: settings.backoff,
        };
        let client =
            async_openai::Client::with_config(config.clone()).with_http_service(service(&http));
        let streaming =
            async_openai::Client::with_config(config).with_http_service(service(&streaming_http));
        let replay = recording
            .replay
            .as_deref()
            .map(Replay::load)
            .transpose()?
            .map(Arc::new);
        let recorder = recording
            .record
            .as_deref()
            .map(Recorder::open)
            .transpose()?
            .map(Arc::new);
        Ok(LlmClient {
            client,
            streaming,
            http,
            endpoint: Arc::new(tokio::sync::OnceCell::new()),
            learned: Arc::default(),
            settings,
            replay,
            recorder,
        })
    }

    /// The settings the client was made with.
    pub fn settings(&self) -> &LlmSettings {
        &self.settings
    }

    /// Sends one chat request and returns the first choice's text (or the
    /// recorded reply, when replaying).
    pub async fn chat(&self, messages: &[Message]) -> Result<Reply, LlmError> {
        self.ask(&Ask::new(messages)).await
    }

    /// Sends the request `ask` describes and returns the reply (or the
    /// recorded reply, when replaying).
    pub async fn ask(&self, ask: &Ask<'_>) -> Result<Reply, LlmError> {
        if let Some(replay) = &self.replay {
            return replay.take(ask.messages);
        }
        let reply = self.ask_endpoint(ask).await?;
        if let Some(recorder) = &self.recorder {
            recorder.write(ask.messages, &reply)?;
        }
        Ok(reply)
    }

    async fn ask_endpoint(&self, ask: &Ask<'_>) -> Result<Reply, LlmError> {
        let endpoint = self.endpoint().await;
        let prompt = window::estimate_tokens(ask.messages.iter().map(|m| m.content.as_str()));
        let max_tokens = match endpoint.window {
            Some(size) => window::reply_budget(size, prompt, self.settings.max_tokens)
                .map_err(|_| self.too_small(endpoint, size, prompt, endpoint.told_by))?,
            None => self.settings.max_tokens,
        };
        let mut grammar = self.grammar(endpoint, ask);
        let mut stream = self.settings.stream && !self.learned.no_stream.load(Ordering::Relaxed);
        let started = Instant::now();
        loop {
            let body = self.request(ask, max_tokens, stream, grammar.as_deref());
            let (result, log) = CALL_LOG
                .scope(RefCell::new(CallLog::default()), async {
                    let result = if stream {
                        self.streamed(body, started, ask.on_text).await
                    } else {
                        self.whole(body).await
                    };
                    (result, CALL_LOG.with(|log| log.borrow().clone()))
                })
                .await;
            let got = match result {
                Ok(got) => got,
                Err(Failed::Http(err)) => {
                    // A server that refuses the grammar or the stream is
                    // asked again without it, and not asked so again.
                    match refusal(&err) {
                        Some(message)
                            if grammar.is_some() && !(stream && names_stream(&message)) =>
                        {
                            tracing::warn!(%message, "the LLM server refuses the reply's grammar; asking without it from now on");
                            self.learned.no_grammar.store(true, Ordering::Relaxed);
                            grammar = None;
                        }
                        Some(message) if stream => {
                            tracing::warn!(%message, "the LLM server refuses to stream; asking for whole replies from now on");
                            self.learned.no_stream.store(true, Ordering::Relaxed);
                            stream = false;
                        }
                        _ => return Err(self.classify(err, &log, endpoint, prompt, stream)),
                    }
                    continue;
                }
                Err(Failed::Stream(StreamFailure::Empty)) => {
                    // The reason is only in the server's log; a request for
                    // the whole reply gets it in the answer.
                    tracing::warn!("the LLM server ended a stream before it began; asking for whole replies from now on");
                    self.learned.no_stream.store(true, Ordering::Relaxed);
                    stream = false;
                    continue;
                }
                Err(Failed::Stream(failure)) => return Err(self.stream_failed(failure, &log)),
                Err(Failed::Malformed(message)) => {
                    return Err(LlmError::Malformed {
                        url: self.settings.endpoint().to_string(),
                        message,
                    })
                }
            };
            return self.reply(got, &log, endpoint, prompt, started, grammar.is_some());
        }
    }

    /// One request for a whole reply.
    async fn whole(&self, body: serde_json::Value) -> Result<Streamed, Failed> {
        let reply: WireReply = self
            .client
            .chat()
            .create_byot(body)
            .await
            .map_err(Failed::Http)?;
        reply.into_streamed()
    }

    /// One request for a streamed reply, tried again (within the retries)
    /// when the stream breaks off. A server that answers with one JSON
    /// reply instead is read as such.
    async fn streamed(
        &self,
        body: serde_json::Value,
        started: Instant,
        on_text: Option<OnText<'_>>,
    ) -> Result<Streamed, Failed> {
        let mut retry = 0;
        loop {
            let chunks = self
                .streaming
                .chat()
                .create_stream_byot::<_, WireChunk>(body.clone())
                .await
                .map_err(Failed::Http)?;
            if let Some(whole) = CALL_LOG.with(|log| log.borrow_mut().body.take()) {
                let reply: WireReply = serde_json::from_slice(&whole).map_err(|e| {
                    Failed::Http(OpenAIError::JSONDeserialize(
                        e,
                        String::from_utf8_lossy(&whole).into_owned(),
                    ))
                })?;
                return reply.into_streamed();
            }
            match stream::read(chunks, started, self.settings.idle_timeout, on_text).await {
                Err(StreamFailure::Cut(message)) if retry < self.settings.retries => {
                    let delay = backoff_delay(self.settings.backoff, retry);
                    tracing::warn!(%message, retry = retry + 1, of = self.settings.retries, wait_ms = delay.as_millis() as u64, "LLM reply broke off; retrying");
                    if let Some(on_text) = on_text {
                        on_text(Partial {
                            text: "",
                            tokens: 0,
                            tokens_per_second: None,
                        });
                    }
                    tokio::time::sleep(delay).await;
                    retry += 1;
                }
                Err(failure) => return Err(Failed::Stream(failure)),
                Ok(got) => return Ok(got),
            }
        }
    }

    /// The reply from what came, with its counts; a reply showing a silent
    /// cut of the prompt fails.
    fn reply(
        &self,
        got: Streamed,
        log: &CallLog,
        endpoint: &window::Endpoint,
        prompt: u32,
        started: Instant,
        constrained: bool,
    ) -> Result<Reply, LlmError> {
        let usage = got.usage.map_or(
            Usage {
                completion_tokens: got.tokens,
                total_tokens: got.tokens,
                ..Usage::default()
            },
            |u| {
                let prompt = u.prompt_tokens.unwrap_or(0);
                let completion = u.completion_tokens.unwrap_or(got.tokens);
                Usage {
                    prompt_tokens: prompt,
                    completion_tokens: completion,
                    total_tokens: u.total_tokens.unwrap_or(prompt + completion),
                }
            },
        );
        // A server that told its window was sent a prompt that fits it (the
        // budget above); one that did not may have cut it, and its count of
        // the prompt says so.
        if endpoint.window.is_none() && window::was_cut(usage.prompt_tokens, prompt) {
            return Err(LlmError::PromptCut {
                url: self.settings.endpoint().to_string(),
                server: endpoint.kind.name(),
                used: usage.prompt_tokens,
                prompt,
                fix: endpoint.kind.fix(),
            });
        }
        Ok(Reply {
            content: got.content,
            usage,
            model: got.model.unwrap_or_else(|| self.settings.model.clone()),
            finish_reason: got.finish_reason,
            retries: log.tries.max(1) - 1,
            elapsed_ms: started.elapsed().as_secs_f64() * 1e3,
            streamed: got.streamed,
            first_token_ms: got.first_token.map(|d| d.as_secs_f64() * 1e3),
            tokens_per_second: got.tokens_per_second,
            constrained: constrained.then(|| "grammar".to_string()),
        })
    }

    fn stream_failed(&self, failure: StreamFailure, log: &CallLog) -> LlmError {
        let url = self.settings.endpoint().to_string();
        match failure {
            StreamFailure::Quiet { idle, tokens } => LlmError::Quiet { url, idle, tokens },
            StreamFailure::Cut(message) => LlmError::Cut {
                url,
                tries: log.tries.max(1),
                message,
            },
            StreamFailure::Error(message) => LlmError::InStream {
                url,
                message: shorten(&message),
            },
            StreamFailure::Empty => LlmError::InStream {
                url,
                message: "the stream ended before it began".into(),
            },
        }
    }

    /// The grammar a request for code is held to, where the server takes one
    /// and the settings and the server's answers so far allow.
    fn grammar(&self, endpoint: &window::Endpoint, ask: &Ask<'_>) -> Option<String> {
        let wanted = match self.settings.constrain {
            Constrain::Never => false,
            Constrain::Reminders => ask.reminder,
            Constrain::Always => true,
        };
        if !wanted
            || !form::takes_grammar(endpoint.kind)
            || self.learned.no_grammar.load(Ordering::Relaxed)
        {
            return None;
        }
        ask.form.grammar()
    }

    /// The error for a `window` of tokens too small for a prompt of
    /// `prompt`, `told_by` where the window was read.
    fn too_small(
        &self,
        endpoint: &window::Endpoint,
        window: u32,
        prompt: u32,
        told_by: &'static str,
    ) -> LlmError {
        LlmError::ContextWindow {
            url: self.settings.endpoint().to_string(),
            server: endpoint.kind.name(),
            window,
            prompt,
            told_by,
            fix: endpoint.kind.fix(),
        }
    }

    /// What the endpoint tells of itself, asked once (OpenAI's is not asked).
    async fn endpoint(&self) -> &window::Endpoint {
        self.endpoint
            .get_or_init(|| async {
                if self.is_openai() {
                    return window::Endpoint::unknown();
                }
                let found = window::probe(
                    &self.http,
                    self.settings.endpoint(),
                    &self.settings.model,
                    self.settings.api_key.as_deref(),
                )
                .await;
                tracing::debug!(?found, "the LLM endpoint");
                found
            })
            .await
    }

    /// The request's JSON: the messages, the reply's budget, a stream or
    /// not, the grammar.
    fn request(
        &self,
        ask: &Ask<'_>,
        max_tokens: Option<u32>,
        stream: bool,
        grammar: Option<&str>,
    ) -> serde_json::Value {
        let messages = ask
            .messages
            .iter()
            .map(|m| match m.role {
                Role::System => ChatCompletionRequestMessage::System(
                    ChatCompletionRequestSystemMessage::from(m.content.clone()),
                ),
                Role::User => ChatCompletionRequestMessage::User(
                    ChatCompletionRequestUserMessage::from(m.content.clone()),
                ),
                Role::Assistant => ChatCompletionRequestMessage::Assistant(
                    ChatCompletionRequestAssistantMessage::from(m.content.clone()),
                ),
            })
            .collect();
        // OpenAI's newer models refuse `max_tokens`; local servers know only it.
        let (max_tokens, max_completion_tokens) = if self.is_openai() {
            (None, max_tokens)
        } else {
            (max_tokens, None)
        };
        #[allow(deprecated)]
        let request = CreateChatCompletionRequest {
            model: ask.model.unwrap_or(&self.settings.model).to_string(),
            messages,
            temperature: self.settings.temperature,
            max_tokens,
            max_completion_tokens,
            stream: Some(stream),
            stream_options: stream.then_some(ChatCompletionStreamOptions {
                include_usage: Some(true),
                include_obfuscation: None,
            }),
            ..Default::default()
        };
        let mut body = serde_json::to_value(request).expect("a chat request serialises");
        if let Some(grammar) = grammar {
            body["grammar"] = grammar.into();
        }
        body
    }

    fn is_openai(&self) -> bool {
        self.settings.endpoint() == OPENAI_BASE_URL
    }

    fn classify(
        &self,
        err: OpenAIError,
        log: &CallLog,
        endpoint: &window::Endpoint,
        prompt: u32,
        stream: bool,
    ) -> LlmError {
        let url = self.settings.endpoint().to_string();
        let tries = log.tries.max(1);
        match err {
            OpenAIError::ApiError(api) => {
                let message = api.api_error.to_string();
                match window::window_in_refusal(&message) {
                    Some(size) if api.status_code.as_u16() == 400 => {
                        self.too_small(endpoint, size, prompt, "as its refusal says")
                    }
                    _ => LlmError::Status {
                        url,
                        status: api.status_code.as_u16(),
                        tries,
                        message: shorten(&message),
                    },
                }
            }
            OpenAIError::Reqwest(e) if e.is_timeout() => LlmError::Timeout {
                url,
                timeout: if stream {
                    self.settings.idle_timeout + STREAM_READ_MARGIN
                } else {
                    self.settings.request_timeout
                },
                tries,
            },
            OpenAIError::Reqwest(e) if e.is_connect() => LlmError::Unreachable {
                url,
                tries,
                source: e,
            },
            OpenAIError::JSONDeserialize(e, body) => match log.last_status {
                Some(status) if !(200..300).contains(&status) => LlmError::Status {
                    url,
                    status,
                    tries,
                    message: shorten(&body),
                },
                _ => LlmError::Undecodable {
                    url,
                    body: shorten(&body),
                    source: e,
                },
            },
            other => LlmError::Request {
                url,
                source: Box::new(other),
            },
        }
    }
}

/// A server's error body cut to a readable length.
fn shorten(text: &str) -> String {
    const KEEP: usize = 300;
    let text = text.trim();
    match text.char_indices().nth(KEEP) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_stays_jittered_below_the_cap() {
        for retry in 0..4 {
            let full = Duration::from_millis(500 * (1 << retry));
            for _ in 0..50 {
                let d = backoff_delay(Duration::from_millis(500), retry);
                assert!(d >= full / 2 && d < full, "{retry}: {d:?}");
            }
        }
        assert!(backoff_delay(Duration::from_secs(1), 30) <= MAX_BACKOFF);
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert(reqwest::header::RETRY_AFTER, "0.5".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(500)));
        let soon = std::time::SystemTime::now() + Duration::from_secs(30);
        headers.insert(
            reqwest::header::RETRY_AFTER,
            httpdate::fmt_http_date(soon).parse().unwrap(),
        );
        let wait = retry_after(&headers).unwrap();
        assert!(
            wait > Duration::from_secs(27) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        headers.insert(reqwest::header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }
}
