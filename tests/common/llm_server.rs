//! An OpenAI-compatible chat server on 127.0.0.1 that answers from a script
//! and records every request, so tests drive cadloop's real HTTP client.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use futures_util::StreamExt;
use serde_json::{json, Value};

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Scripted {
    /// A chat completion with this text.
    Reply(String),
    /// An HTTP error status, with extra headers and a body.
    Status {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: String,
    },
    /// A 200 whose body is not a chat completion.
    Raw(String),
    /// A chat completion with this text whose connection drops halfway
    /// through its body (its length was announced).
    Dropped(String),
    /// A chat completion with this text whose JSON body ends halfway, as
    /// a server that ends a body by closing the connection sends it.
    CutJson(String),
    /// A chat completion with this text that says the server read only
    /// this many of the prompt's tokens.
    ReadOnly(String, u64),
    /// A stream that sends this text, then nothing more, never ending.
    Quiet(String),
    /// A stream that ends before its first event, as llama-cpp-python's
    /// does for a prompt too long for its window.
    Empty,
    /// The server goes away: this request's connection is dropped and the
    /// port stops listening.
    Gone,
}

pub fn reply(text: &str) -> Scripted {
    Scripted::Reply(text.to_string())
}

pub fn status(status: u16, body: &str) -> Scripted {
    Scripted::Status {
        status,
        headers: Vec::new(),
        body: body.to_string(),
    }
}

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub body: Value,
    pub at: Instant,
}

impl Seen {
    /// The last user message's text.
    pub fn last_user(&self) -> String {
        self.messages()
            .iter()
            .rev()
            .find(|m| m["role"] == "user")
            .and_then(|m| m["content"].as_str())
            .unwrap_or_default()
            .to_string()
    }

    pub fn messages(&self) -> Vec<Value> {
        self.body["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

type Responder = Box<dyn Fn(&Seen) -> Scripted + Send + Sync>;

struct Shared {
    script: Mutex<VecDeque<Scripted>>,
    seen: Mutex<Vec<Seen>>,
    /// Answers requests once the script is used up.
    responder: Option<Responder>,
    /// Time taken before every answer.
    delay: Duration,
    /// The context window `GET /props` tells, as llama.cpp's llama-server
    /// does; `None`: 404.
    window: Mutex<Option<u32>>,
    /// The model parameters `POST /api/show` tells, as Ollama does; `None`: 404.
    ollama: Mutex<Option<String>>,
    /// How the server answers a request for a stream.
    streams: Mutex<Streams>,
    /// Raised by [`Scripted::Gone`]: the server stops listening.
    gone: tokio::sync::Notify,
}

/// How the server answers a request with `"stream": true`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Streams {
    /// Server-sent events, a chunk every so often.
    Sent(Duration),
    /// HTTP 400, as a server that cannot stream.
    Refused,
    /// One whole JSON reply, as a server that ignores the field.
    Ignored,
}

/// The running server; stops with the test process.
pub struct ScriptedLlm {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl ScriptedLlm {
    pub fn start(script: Vec<Scripted>) -> ScriptedLlm {
        ScriptedLlm::serve(Shared {
            script: Mutex::new(script.into()),
            seen: Mutex::new(Vec::new()),
            responder: None,
            delay: Duration::ZERO,
            window: Mutex::new(None),
            ollama: Mutex::new(None),
            streams: Mutex::new(Streams::Sent(Duration::ZERO)),
            gone: tokio::sync::Notify::new(),
        })
    }

    /// A server that answers each request with `responder(request)`, after `delay`.
    pub fn responding(
        delay: Duration,
        responder: impl Fn(&Seen) -> Scripted + Send + Sync + 'static,
    ) -> ScriptedLlm {
        ScriptedLlm::serve(Shared {
            script: Mutex::new(VecDeque::new()),
            seen: Mutex::new(Vec::new()),
            responder: Some(Box::new(responder)),
            delay,
            window: Mutex::new(None),
            ollama: Mutex::new(None),
            streams: Mutex::new(Streams::Sent(Duration::ZERO)),
            gone: tokio::sync::Notify::new(),
        })
    }

    fn serve(shared: Shared) -> ScriptedLlm {
        let shared = Arc::new(shared);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let state = shared.clone();
        let state_for_gone = shared.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let app = Router::new()
                    .route("/v1/chat/completions", post(answer))
                    .route("/props", axum::routing::get(props))
                    .route("/api/show", post(show))
                    .with_state(state);
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                tokio::select! {
                    served = axum::serve(listener, app) => served.unwrap(),
                    () = state_for_gone.gone.notified() => {}
                }
            });
        });
        ScriptedLlm { addr, shared }
    }

    /// The base URL to give cadloop.
    pub fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// Tells a context window of `tokens` in `GET /props`, as llama-server does.
    pub fn with_window(self, tokens: u32) -> ScriptedLlm {
        *self.shared.window.lock().unwrap() = Some(tokens);
        self
    }

    /// Answers `POST /api/show` as Ollama does, with these model parameters
    /// ("num_ctx 8192", or "" for a Modelfile that sets none).
    pub fn like_ollama(self, parameters: &str) -> ScriptedLlm {
        *self.shared.ollama.lock().unwrap() = Some(parameters.to_string());
        self
    }

    /// Answers requests for a stream as `streams` says.
    pub fn streaming(self, streams: Streams) -> ScriptedLlm {
        *self.shared.streams.lock().unwrap() = streams;
        self
    }

    /// Scripted answers not yet given.
    pub fn left(&self) -> usize {
        self.shared.script.lock().unwrap().len()
    }
}

async fn props(State(shared): State<Arc<Shared>>) -> Response {
    match *shared.window.lock().unwrap() {
        Some(n_ctx) => {
            Json(json!({"default_generation_settings": {"n_ctx": n_ctx}})).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn show(State(shared): State<Arc<Shared>>) -> Response {
    match &*shared.ollama.lock().unwrap() {
        Some(parameters) => Json(json!({
            "parameters": parameters,
            "model_info": {"general.architecture": "qwen2"}
        }))
        .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn answer(State(shared): State<Arc<Shared>>, Json(body): Json<Value>) -> Response {
    let seen = Seen {
        body: body.clone(),
        at: Instant::now(),
    };
    shared.seen.lock().unwrap().push(seen.clone());
    let streams = match *shared.streams.lock().unwrap() {
        _ if body["stream"] != true => None,
        Streams::Refused => {
            let refusal = json!({"error": {"message": "streaming is not supported", "type": "invalid_request_error"}});
            return (StatusCode::BAD_REQUEST, Json(refusal)).into_response();
        }
        Streams::Ignored => None,
        Streams::Sent(every) => Some(every),
    };
    let scripted = shared.script.lock().unwrap().pop_front();
    let next = scripted.or_else(|| shared.responder.as_ref().map(|respond| respond(&seen)));
    if matches!(next, Some(Scripted::Gone)) {
        // The server stops: this connection is dropped with it.
        shared.gone.notify_one();
        std::future::pending::<()>().await;
    }
    if !shared.delay.is_zero() {
        tokio::time::sleep(shared.delay).await;
    }
    if let (Some(every), Some(next)) = (streams, &next) {
        if let Some(response) = stream(&body, next, every) {
            return response;
        }
    }
    match next {
        Some(Scripted::Reply(text)) => Json(completion(&body, &text)).into_response(),
        Some(Scripted::Quiet(_) | Scripted::Empty) => {
            unreachable!("only a stream is quiet or empty")
        }
        Some(Scripted::ReadOnly(text, read)) => {
            let mut answer = completion(&body, &text);
            answer["usage"]["prompt_tokens"] = json!(read);
            Json(answer).into_response()
        }
        Some(Scripted::Dropped(text)) => {
            let whole = completion(&body, &text).to_string().into_bytes();
            let half = whole[..whole.len() / 2].to_vec();
            let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![
                Ok(half),
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "dropped",
                )),
            ];
            Response::builder()
                .header("content-type", "application/json")
                .header("content-length", whole.len().to_string())
                .body(axum::body::Body::from_stream(futures_util::stream::iter(
                    chunks,
                )))
                .unwrap()
        }
        Some(Scripted::CutJson(text)) => {
            let whole = completion(&body, &text).to_string();
            let half = whole[..whole.len() / 2].to_string();
            (StatusCode::OK, [("content-type", "application/json")], half).into_response()
        }
        Some(Scripted::Status {
            status,
            headers,
            body,
        }) => {
            let mut map = HeaderMap::new();
            for (name, value) in headers {
                map.insert(
                    HeaderName::from_static(name),
                    HeaderValue::from_str(&value).unwrap(),
                );
            }
            (StatusCode::from_u16(status).unwrap(), map, body).into_response()
        }
        Some(Scripted::Raw(body)) => (StatusCode::OK, body).into_response(),
        Some(Scripted::Gone) => unreachable!("the server is gone"),
        // 400 is not retried, so a test that runs out of script fails at once.
        None => (
            StatusCode::BAD_REQUEST,
            "the test script has no more replies",
        )
            .into_response(),
    }
}

/// A streamed answer to a request for a stream, `every` between chunks;
/// `None` for answers that are not replies (an error status, a raw body).
fn stream(body: &Value, next: &Scripted, every: Duration) -> Option<Response> {
    let (text, read, end) = match next {
        Scripted::Reply(text) => (text, None, End::Done),
        Scripted::ReadOnly(text, read) => (text, Some(*read), End::Done),
        Scripted::Dropped(text) => (text, None, End::Dropped),
        Scripted::CutJson(text) => (text, None, End::Closed),
        Scripted::Quiet(text) => (text, None, End::Quiet),
        Scripted::Empty => {
            return Some(
                Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
        }
        Scripted::Status { .. } | Scripted::Raw(_) | Scripted::Gone => return None,
    };
    let whole = completion(body, text);
    let mut usage = whole["usage"].clone();
    if let Some(read) = read {
        usage["prompt_tokens"] = json!(read);
    }
    // Pieces of about four characters, as tokens come; a cut stream sends half.
    let chars: Vec<char> = text.chars().collect();
    let mut pieces: Vec<String> = chars.chunks(4).map(|c| c.iter().collect()).collect();
    if matches!(end, End::Dropped | End::Closed) {
        pieces.truncate(pieces.len() / 2);
    }
    let chunk = |delta: Value, finish: Value| {
        let chunk = json!({
            "id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 0,
            "model": body["model"],
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
        });
        format!("data: {chunk}\n\n")
    };
    let mut events = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    events.extend(
        pieces
            .iter()
            .map(|p| chunk(json!({"content": p}), Value::Null)),
    );
    if end == End::Done {
        events.push(chunk(json!({}), json!("stop")));
        if body["stream_options"]["include_usage"] == true {
            let last = json!({"id": "chatcmpl-test", "object": "chat.completion.chunk",
                "created": 0, "model": body["model"], "choices": [], "usage": usage});
            events.push(format!("data: {last}\n\n"));
        }
        events.push("data: [DONE]\n\n".to_string());
    }
    let sent = futures_util::stream::iter(events).then(move |event| async move {
        if !every.is_zero() {
            tokio::time::sleep(every).await;
        }
        Ok::<_, std::io::Error>(event)
    });
    let tail: futures_util::stream::BoxStream<'static, Result<String, std::io::Error>> = match end {
        End::Done | End::Closed => Box::pin(futures_util::stream::empty()),
        End::Dropped => Box::pin(futures_util::stream::once(async {
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "dropped",
            ))
        })),
        End::Quiet => Box::pin(futures_util::stream::pending()),
    };
    Some(
        Response::builder()
            .header("content-type", "text/event-stream")
            .body(axum::body::Body::from_stream(sent.chain(tail)))
            .unwrap(),
    )
}

/// How a streamed answer ends.
#[derive(Debug, Clone, Copy, PartialEq)]
enum End {
    /// With a finish reason and `[DONE]`.
    Done,
    /// The connection breaks halfway.
    Dropped,
    /// The server closes halfway, cleanly.
    Closed,
    /// Nothing more is sent, and the stream stays open.
    Quiet,
}

/// A chat completion answering `body` with `text`; its usage counts four
/// characters a token.
fn completion(body: &Value, text: &str) -> Value {
    let prompt_chars: usize = body["messages"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .map(|m| m["content"].as_str().map_or(0, str::len))
                .sum()
        })
        .unwrap_or(0);
    let (prompt_tokens, completion_tokens) = (prompt_chars / 4, text.len() / 4);
    json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": body["model"],
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": "stop"
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens
        }
    })
}

/// How long apart two requests arrived.
pub fn gap(a: &Seen, b: &Seen) -> Duration {
    b.at.duration_since(a.at)
}
