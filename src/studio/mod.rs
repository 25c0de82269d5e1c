//! The studio: `cadloop serve`, a local web app over the runs folder. One
//! process and one [`Engine`] (worker pool, captioner) serve every request.
//!
//! This part: the runs page, a run's page with its model in a 3D viewer
//! (three.js from npm, served from its install) and controls for its
//! parameters that call `tweak`, the example parts opened as runs without
//! any LLM, and the files of the runs folder. Every request passes the
//! [`guard`] first.

pub mod guard;
mod live;
mod pages;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use indicatif::ProgressBar;
use serde::Deserialize;

use crate::interrupt::{Cause, Interrupt};
use crate::pipeline::{Engine, Tweak, Watch};
use crate::report::{read_run, RunSettings};
use crate::run::RunDir;

pub use guard::Guard;
pub use pages::{list_runs, RunRow};

/// Request bodies are small JSON objects.
const MAX_BODY: usize = 64 * 1024;

/// Where the studio serves from.
pub struct StudioConfig {
    /// The runs folder (created if missing).
    pub runs: PathBuf,
    /// The example parts offered as runs.
    pub examples: PathBuf,
    /// The npm install holding `three/`.
    pub web_modules: PathBuf,
    /// Why there is no LLM (how to configure one), when there is none.
    pub no_llm: Option<String>,
}

struct Studio {
    runs: PathBuf,
    examples: PathBuf,
    web_modules: PathBuf,
    no_llm: Option<String>,
    engine: Engine,
    settings: RunSettings,
    /// Per run: the newest tweak asked for, and the lock rebuilds wait on.
    tweaks: Mutex<HashMap<String, Arc<TweakQueue>>>,
    /// Runs of the loop going on, by id: their progress line and stop.
    active: Mutex<HashMap<String, Watch>>,
}

#[derive(Default)]
struct TweakQueue {
    newest: AtomicU64,
    running: tokio::sync::Mutex<()>,
    rebuilds: Mutex<Rebuilds>,
}

/// What a newer change needs to know to decide whether it stops the
/// rebuild going on (`stops_rebuild`).
#[derive(Default)]
struct Rebuilds {
    /// The stop of the rebuild going on.
    current: Option<Interrupt>,
    /// How long the last rebuild that finished took.
    last_took: Option<Duration>,
    /// Since when changes have come with none of them shown.
    unshown_since: Option<Instant>,
}

/// Whether a newer change stops the rebuild going on, when changes have
/// come for `unshown` with none shown. Once that is longer than the last
/// rebuild took, the one going on is let finish and the newer change
/// waits: changes that keep coming faster than the part rebuilds (a slider
/// dragged) still show a result every two rebuilds or so, where stopping
/// every rebuild would show none until they pause. A run's first rebuild
/// in this studio, untimed, is let finish.
fn stops_rebuild(unshown: Duration, last_took: Option<Duration>) -> bool {
    last_took.is_some_and(|took| unshown < took)
}

type Shared = State<Arc<Studio>>;

/// A refusal or failure, as a JSON body with its status.
struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({"error": self.1}))).into_response()
    }
}

fn bad(message: impl Into<String>) -> Failure {
    Failure(StatusCode::BAD_REQUEST, message.into())
}

/// The studio's routes behind `guard`.
pub fn router(
    config: StudioConfig,
    engine: Engine,
    settings: RunSettings,
    guard: Guard,
) -> std::io::Result<Router> {
    std::fs::create_dir_all(&config.runs)?;
    let studio = Arc::new(Studio {
        runs: config.runs.canonicalize()?,
        examples: config.examples,
        web_modules: config.web_modules,
        no_llm: config.no_llm,
        engine,
        settings,
        tweaks: Mutex::new(HashMap::new()),
        active: Mutex::new(HashMap::new()),
    });
    Ok(Router::new()
        .route("/", get(runs_page))
        .route("/runs/{id}/", get(run_page))
        .route("/runs/{id}/files/{*path}", get(run_file))
        .route(
            "/assets/studio.js",
            get(|| async { script(pages::STUDIO_JS) }),
        )
        .route("/assets/three/{*path}", get(three_file))
        .route("/api/runs", post(live::generate))
        .route("/api/runs/{id}", get(run_json))
        .route("/api/runs/{id}/events", get(live::events))
        .route("/api/runs/{id}/refine", post(live::refine))
        .route("/api/runs/{id}/stop", post(live::stop))
        .route("/api/runs/{id}/tweak", post(tweak))
        .route("/api/examples/{name}", post(open_example))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(
            guard,
            guard::middleware,
        ))
        .with_state(studio))
}

/// Serves `router` on `listener` until `stop` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stop)
    .await
}

fn script(source: &'static str) -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        source,
    )
        .into_response()
}

async fn runs_page(State(studio): Shared) -> Result<Html<String>, Failure> {
    let runs = pages::list_runs(&studio.runs);
    let examples = pages::list_examples(&studio.examples);
    pages::runs_page(&runs, &examples, studio.no_llm.as_deref(), &studio.settings)
        .map(Html)
        .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// The run folder of `id`, checked: it has a run.json, or its run is
/// starting here.
fn run_dir(studio: &Studio, id: &str) -> Result<PathBuf, Failure> {
    if !guard::valid_id(id) {
        return Err(bad(format!("{id:?} is not a run id")));
    }
    let starting = studio.active.lock().expect("active runs").contains_key(id);
    guard::inside(&studio.runs, &guard::id_path(id))
        .filter(|p| starting || p.join(crate::report::RUN_FILE).is_file())
        .ok_or_else(|| Failure(StatusCode::NOT_FOUND, format!("no run {id}")))
}

async fn run_page(
    State(studio): Shared,
    UrlPath(id): UrlPath<String>,
) -> Result<Html<String>, Failure> {
    let dir = run_dir(&studio, &id)?;
    let starting = studio.active.lock().expect("active runs").contains_key(&id);
    let record = match read_run(&dir) {
        Ok(record) => Some(record),
        // A run just started here writes its record a moment later.
        Err(_) if starting && !dir.join(crate::report::RUN_FILE).exists() => None,
        Err(e) => return Err(Failure(StatusCode::CONFLICT, crate::error_chain(&e))),
    };
    let three = studio
        .web_modules
        .join("three/build/three.module.js")
        .is_file();
    pages::run_page(&id, record.as_ref(), three, studio.no_llm.is_none())
        .map(Html)
        .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

async fn run_json(
    State(studio): Shared,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<pages::RunState>, Failure> {
    let dir = run_dir(&studio, &id)?;
    let record =
        read_run(&dir).map_err(|e| Failure(StatusCode::CONFLICT, crate::error_chain(&e)))?;
    Ok(Json(pages::RunState::of(&id, &record)))
}

async fn run_file(
    State(studio): Shared,
    UrlPath((id, path)): UrlPath<(String, String)>,
) -> Result<Response, Failure> {
    let dir = run_dir(&studio, &id)?;
    let file = guard::inside(&dir, &path)
        .ok_or_else(|| Failure(StatusCode::NOT_FOUND, format!("no file {path}")))?;
    send_file(&file).await
}

async fn three_file(
    State(studio): Shared,
    UrlPath(path): UrlPath<String>,
) -> Result<Response, Failure> {
    let root = studio.web_modules.join("three");
    let file = guard::inside(&root, &path)
        .ok_or_else(|| Failure(StatusCode::NOT_FOUND, format!("no file {path}")))?;
    send_file(&file).await
}

async fn send_file(path: &Path) -> Result<Response, Failure> {
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|_| Failure(StatusCode::NOT_FOUND, "not a readable file".into()))?;
    let kind = crate::files::media_type(path);
    Ok((
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        bytes,
    )
        .into_response())
}

#[derive(Deserialize)]
struct TweakBody {
    /// NAME → new value, as text or a number.
    values: HashMap<String, serde_json::Value>,
}

/// Rebuilds a run's result with new parameter values; the newest request
/// for a run wins: an older one still waiting is dropped, and one building
/// is stopped unless changes have waited longer than a rebuild takes
/// (`stops_rebuild`).
async fn tweak(
    State(studio): Shared,
    UrlPath(id): UrlPath<String>,
    Json(body): Json<TweakBody>,
) -> Result<Json<pages::RunState>, Failure> {
    let dir = run_dir(&studio, &id)?;
    let queue = studio
        .tweaks
        .lock()
        .expect("tweak table")
        .entry(id.clone())
        .or_default()
        .clone();
    let mine = queue.newest.fetch_add(1, Ordering::SeqCst) + 1;
    // A rebuild still running for an older value is stopped, as a rule.
    {
        let mut rebuilds = queue.rebuilds.lock().expect("tweak rebuilds");
        let unshown = rebuilds
            .unshown_since
            .get_or_insert_with(Instant::now)
            .elapsed();
        if let Some(older) = &rebuilds.current {
            if stops_rebuild(unshown, rebuilds.last_took) {
                older.raise(Cause::Asked);
            }
        }
    }
    let _turn = queue.running.lock().await;
    if queue.newest.load(Ordering::SeqCst) != mine {
        return Err(superseded());
    }
    let watch = Watch::showing(&ProgressBar::hidden());
    let began = Instant::now();
    queue.rebuilds.lock().expect("tweak rebuilds").current = Some(watch.stop.clone());
    let (run_dir, record) =
        RunDir::open(&dir).map_err(|e| Failure(StatusCode::CONFLICT, crate::error_chain(&e)))?;
    let from = crate::pipeline::start_attempt(&record, None)
        .map_err(|e| bad(e.explain("from_attempt")))?;
    let assignments = crate::pipeline::assignments(&body.values).map_err(|e| bad(e.to_string()))?;
    let tweak = Tweak::new(&record, from, &assignments).map_err(|e| bad(e.to_string()))?;
    let result = studio
        .engine
        .tweak(&run_dir, record, tweak, studio.settings.clone(), &watch)
        .await
        .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, crate::error_chain(&e)))?;
    if result.interrupted.is_some() {
        return Err(superseded());
    }
    {
        let mut rebuilds = queue.rebuilds.lock().expect("tweak rebuilds");
        rebuilds.last_took = Some(began.elapsed());
        rebuilds.unshown_since = None;
    }
    let record = result.record;
    let mut state = pages::RunState::of(&id, &record);
    state.error = crate::pipeline::why_no_result(&record);
    Ok(Json(state))
}

fn superseded() -> Failure {
    Failure(StatusCode::CONFLICT, "superseded by a newer change".into())
}

/// Opens an example part as a new run (no LLM): `runs/<name>`, numbered when taken.
async fn open_example(
    State(studio): Shared,
    UrlPath(name): UrlPath<String>,
) -> Result<Json<pages::RunState>, Failure> {
    if !guard::valid_id(&name) {
        return Err(bad(format!("{name:?} is not an example")));
    }
    let script = guard::inside(&studio.examples, &format!("{name}.py"))
        .ok_or_else(|| Failure(StatusCode::NOT_FOUND, format!("no example {name}")))?;
    let code = tokio::fs::read_to_string(&script)
        .await
        .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let prompt = pages::description(&code).unwrap_or_else(|| name.replace('_', " "));
    let (id, dir) = new_run_folder(&studio, &name)?;
    // No LLM is asked: the record names none.
    let settings = RunSettings {
        llm: None,
        ..studio.settings.clone()
    };
    let result = studio
        .engine
        .run_given(
            &prompt,
            code,
            None,
            &dir,
            settings,
            &Watch::showing(&ProgressBar::hidden()),
        )
        .await
        .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, crate::error_chain(&e)))?;
    Ok(Json(pages::RunState::of(&id, &result.record)))
}

/// A new run folder `name` in the runs folder (`name-2`, `-3`, … when
/// taken), created and locked, with its id.
fn new_run_folder(studio: &Studio, name: &str) -> Result<(String, RunDir), Failure> {
    let folder = crate::run::free_folder(&studio.runs, name);
    let id = folder
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| bad(format!("no folder name from {name:?}")))?;
    let dir = RunDir::create(&folder)
        .map_err(|e| Failure(StatusCode::CONFLICT, crate::error_chain(&e)))?;
    Ok((id, dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rebuild_is_let_finish_once_changes_waited_longer_than_one_takes() {
        let ms = Duration::from_millis;
        // Rebuilds take 400 ms: stopped while changes waited less.
        assert!(stops_rebuild(ms(0), Some(ms(400))));
        assert!(stops_rebuild(ms(399), Some(ms(400))));
        assert!(!stops_rebuild(ms(400), Some(ms(400))));
        assert!(!stops_rebuild(ms(5000), Some(ms(400))));
        // Untimed, the first is let finish.
        assert!(!stops_rebuild(ms(0), None));
    }
}
