//! Runs of the loop from the studio: a new run, a change in words, the stop
//! button, and the events a run page follows (server-sent events: the run's
//! state each time run.json, the current stage or the reply being written
//! changes).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use futures_util::stream::{self, Stream};
use indicatif::ProgressBar;
use serde::Deserialize;

use crate::interrupt::Cause;
use crate::pipeline::{PipelineError, RunResult, Watch};
use crate::report::{read_run, RunStatus};
use crate::run::RunDir;

use super::{bad, new_run_folder, pages, run_dir, Failure, Shared, Studio};

/// How often a followed run is looked at.
const POLL: Duration = Duration::from_millis(150);

#[derive(Deserialize)]
pub(super) struct NewRun {
    prompt: String,
    /// Another model of the configured endpoint.
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    max_repairs: Option<u32>,
    #[serde(default)]
    max_refines: Option<u32>,
}

#[derive(Deserialize)]
pub(super) struct Change {
    change: String,
    #[serde(default)]
    from_attempt: Option<u32>,
}

fn text_of(text: &str, what: &str) -> Result<String, Failure> {
    crate::pipeline::request_text(text, what).map_err(bad)
}

fn needs_llm(studio: &Studio) -> Result<(), Failure> {
    match &studio.no_llm {
        Some(message) => Err(Failure(StatusCode::CONFLICT, message.clone())),
        None => Ok(()),
    }
}

/// Registers a run as going on; the guard forgets it when the task ends.
fn follow(studio: &Arc<Studio>, id: &str) -> Watch {
    let watch = Watch::showing(&ProgressBar::hidden());
    studio
        .active
        .lock()
        .expect("active runs")
        .insert(id.to_string(), watch.clone());
    watch
}

/// The end of a run's task (its folder already unlocked): a failure of the
/// loop itself is logged, and the run is no longer going on.
fn ended(studio: &Studio, id: &str, result: Result<RunResult, PipelineError>) {
    if let Err(err) = result {
        tracing::error!(run = %id, "{}", crate::error_chain(&err));
    }
    studio.active.lock().expect("active runs").remove(id);
}

/// `POST /api/runs {"prompt"}`: starts the loop in a new run folder.
pub(super) async fn generate(
    State(studio): Shared,
    Json(body): Json<NewRun>,
) -> Result<Json<serde_json::Value>, Failure> {
    needs_llm(&studio)?;
    let prompt = text_of(&body.prompt, "prompt")?;
    let mut settings = studio.settings.clone();
    let budget = crate::pipeline::asked_budget(&mut settings, body.max_repairs, body.max_refines)
        .map_err(bad)?;
    let model = match body.model.as_deref().map(str::trim) {
        Some(m) if !m.is_empty() => {
            if m.len() > 200 || m.chars().any(char::is_control) {
                return Err(bad("the model name is not usable"));
            }
            if let Some(llm) = settings.llm.as_mut() {
                llm.model = m.to_string();
            }
            Some(m.to_string())
        }
        _ => None,
    };
    let (id, dir) = new_run_folder(&studio, &crate::run::slug(&prompt))?;
    let mut watch = follow(&studio, &id);
    watch.budget = Some(budget);
    watch.model = model;
    let task_studio = studio.clone();
    let task_id = id.clone();
    tokio::spawn(async move {
        let result = task_studio
            .engine
            .run(&prompt, &dir, settings, &watch)
            .await;
        drop(dir);
        ended(&task_studio, &task_id, result);
    });
    Ok(Json(serde_json::json!({"id": id})))
}

/// `POST /api/runs/{id}/refine {"change", "from_attempt"}`: a change in words.
pub(super) async fn refine(
    State(studio): Shared,
    UrlPath(id): UrlPath<String>,
    Json(body): Json<Change>,
) -> Result<Json<serde_json::Value>, Failure> {
    needs_llm(&studio)?;
    let change = text_of(&body.change, "change")?;
    let folder = run_dir(&studio, &id)?;
    let (dir, record) =
        RunDir::open(&folder).map_err(|e| Failure(StatusCode::CONFLICT, crate::error_chain(&e)))?;
    let from = crate::pipeline::start_attempt(&record, body.from_attempt)
        .map_err(|e| bad(e.explain("from_attempt")))?;
    let watch = follow(&studio, &id);
    let task_studio = studio.clone();
    tokio::spawn(async move {
        let result = task_studio
            .engine
            .refine(
                &dir,
                record,
                &change,
                from,
                task_studio.settings.clone(),
                &watch,
            )
            .await;
        drop(dir);
        ended(&task_studio, &id, result);
    });
    Ok(Json(serde_json::json!({"ok": true})))
}

/// `POST /api/runs/{id}/stop`: the same graceful stop as Ctrl-C.
pub(super) async fn stop(
    State(studio): Shared,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<serde_json::Value>, Failure> {
    run_dir(&studio, &id)?;
    let watch = studio.active.lock().expect("active runs").get(&id).cloned();
    match watch {
        Some(watch) => {
            watch.stop.raise(Cause::Asked);
            Ok(Json(serde_json::json!({"stopping": true})))
        }
        None => Err(Failure(
            StatusCode::CONFLICT,
            "the run is not going on".into(),
        )),
    }
}

/// `GET /api/runs/{id}/events`: the run's state whenever it changes, until
/// the run is neither going on nor running.
pub(super) async fn events(
    State(studio): Shared,
    UrlPath(id): UrlPath<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, std::convert::Infallible>>>, Failure> {
    let folder = run_dir(&studio, &id)?;
    let start = (studio, id, folder, String::new(), false);
    let updates = stream::unfold(start, |(studio, id, folder, last, done)| async move {
        if done {
            return None;
        }
        loop {
            let watch = studio.active.lock().expect("active runs").get(&id).cloned();
            let record = read_run(&folder).ok();
            let mut state = match &record {
                Some(record) => pages::RunState::of(&id, record),
                None => pages::RunState::starting(&id),
            };
            state.stage = watch.as_ref().map(|w| w.progress.message());
            state.writing = watch.as_ref().and_then(|w| w.writing.now());
            state.active = watch.is_some();
            let text = serde_json::to_string(&state).expect("a run state serialises");
            let running = watch.is_some()
                || record
                    .as_ref()
                    .is_some_and(|r| r.status == RunStatus::Running);
            if text != last || !running {
                let event = Event::default().event("state").data(text.clone());
                return Some((Ok(event), (studio, id, folder, text, !running)));
            }
            tokio::time::sleep(super::live::POLL).await;
        }
    });
    Ok(Sse::new(updates).keep_alive(KeepAlive::default()))
}
