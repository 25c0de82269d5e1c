//! `cadloop serve`, the studio: the real binary on a free port, spoken to
//! over plain HTTP (so every header is the test's own), and its run page
//! drawn by headless chromium. No LLM endpoint is configured: examples open
//! as runs and their parameters rebuild them.

mod common;

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::chromium;
use common::http::request;
use common::llm_server::{Scripted, ScriptedLlm};
use common::parts::{fenced, part_writer, CHECKS, PROMPT, RIGHT};
use common::studio::{follow, get, post, start, Studio};
use serde_json::Value;

/// A screenshot of `url` by headless chromium, with software WebGL.
fn screenshot(url: &str, out: &Path) -> image::RgbImage {
    let profile = tempfile::tempdir().unwrap();
    let status = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--use-angle=swiftshader",
            "--enable-unsafe-swiftshader",
            "--hide-scrollbars",
            "--no-first-run",
            "--disable-dev-shm-usage",
            "--force-device-scale-factor=1",
            "--window-size=1280,900",
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", out.display()))
        .arg(url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    image::open(out).unwrap().to_rgb8()
}

#[test]
fn an_example_opens_as_a_run_and_its_parameters_rebuild_it_without_an_llm() {
    let dir = tempfile::tempdir().unwrap();
    let studio = start(dir.path(), &[]);

    let page = get(&studio, "/");
    assert_eq!(page.status, 200);
    assert!(
        page.text().contains("data-name=\"washer\""),
        "the examples are offered"
    );

    let opened = post(&studio, "/api/examples/washer", "");
    assert_eq!(opened.status, 200, "{}", opened.text());
    let state = opened.json();
    assert_eq!(state["id"], "washer");
    assert_eq!(state["facts"]["size"][0], 24.0);
    let names: Vec<&str> = state["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["OUTER_D", "INNER_D", "THICKNESS"]);
    let record: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("runs/washer/run.json")).unwrap())
            .unwrap();
    assert_eq!(record["requests"][0]["kind"], "given");
    assert_eq!(record["llm_calls"], 0);

    let tweaked = post(
        &studio,
        "/api/runs/washer/tweak",
        r#"{"values": {"OUTER_D": 30}}"#,
    );
    assert_eq!(tweaked.status, 200, "{}", tweaked.text());
    let state = tweaked.json();
    assert_eq!(state["result"], 2);
    assert_eq!(state["facts"]["size"][0], 30.0);
    let glb = get(&studio, state["model"].as_str().unwrap());
    assert_eq!(glb.status, 200);
    assert_eq!(&glb.body[..4], b"glTF");

    // Values FreeCAD cannot build: an error, and the result stays.
    let failed = post(
        &studio,
        "/api/runs/washer/tweak",
        r#"{"values": {"THICKNESS": 0}}"#,
    );
    assert_eq!(failed.status, 200);
    assert!(
        failed.json()["error"].as_str().is_some(),
        "{}",
        failed.text()
    );
    assert_eq!(failed.json()["result"], 2);
    let unknown = post(
        &studio,
        "/api/runs/washer/tweak",
        r#"{"values": {"DEPTH": 3}}"#,
    );
    assert_eq!(unknown.status, 400);
    assert!(
        unknown.text().contains("no parameter is named DEPTH"),
        "{}",
        unknown.text()
    );

    // A batch output's items are runs too, as BATCH~ITEM.
    let items = dir.path().join("runs/out/items");
    std::fs::create_dir_all(&items).unwrap();
    let copied = Command::new("cp")
        .args(["-r", "runs/washer", "runs/out/items/w1"])
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(copied.success());
    assert!(
        get(&studio, "/").text().contains("/runs/out~w1/"),
        "batch items are listed"
    );
    assert_eq!(get(&studio, "/runs/out~w1/").status, 200);
    assert_eq!(
        get(&studio, "/api/runs/out~w1").json()["facts"]["size"][0],
        30.0
    );

    // The run page draws the part: the viewer's region is not all background.
    let run_page = get(&studio, "/runs/washer/");
    assert_eq!(run_page.status, 200);
    assert!(
        run_page.text().contains("OUTER_D"),
        "the state carries the parameters"
    );
    let shot = screenshot(
        &format!("{}runs/washer/", studio.url),
        &dir.path().join("shot.png"),
    );
    let viewer = image::imageops::crop_imm(&shot, 40, 130, 860, 500).to_image();
    let drawn = viewer
        .pixels()
        .filter(|p| p.0.iter().any(|&c| c < 200))
        .count();
    assert!(drawn > 5_000, "the viewer drew {drawn} dark pixels");
}

#[test]
fn tweaks_coming_faster_than_rebuilds_still_show_results_and_end_on_the_newest() {
    // A slider dragged: four senders, each posting its next value within
    // 20 ms of its last answer, for 15 s. A rebuild (FreeCAD, the mesh,
    // seven views, the checks) takes far longer than the gaps between
    // changes, so if every change stopped the rebuild going on, none would
    // be shown until the dragging stopped.
    let dir = tempfile::tempdir().unwrap();
    let studio = Arc::new(start(dir.path(), &[]));
    assert_eq!(post(&studio, "/api/examples/washer", "").status, 200);
    let counter = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(15);
    let senders: Vec<_> = (0..4)
        .map(|_| {
            let (studio, counter) = (studio.clone(), counter.clone());
            std::thread::spawn(move || {
                // (when answered, the thickness) of each change applied.
                let mut applied = Vec::new();
                while Instant::now() < until {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let thickness = 2.0 + n as f64 * 0.001;
                    let body = format!(r#"{{"values": {{"THICKNESS": {thickness}}}}}"#);
                    let reply = post(&studio, "/api/runs/washer/tweak", &body);
                    match reply.status {
                        200 => {
                            assert!(reply.json()["error"].is_null(), "{}", reply.text());
                            applied.push((Instant::now(), thickness));
                        }
                        409 => assert!(reply.text().contains("superseded"), "{}", reply.text()),
                        other => panic!("{other}: {}", reply.text()),
                    }
                    std::thread::sleep(Duration::from_millis(fastrand::u64(0..20)));
                }
                applied
            })
        })
        .collect();
    let mut applied: Vec<(Instant, f64)> = senders
        .into_iter()
        .flat_map(|s| s.join().unwrap())
        .collect();
    applied.sort_by_key(|&(at, _)| at);
    let sent = counter.load(Ordering::Relaxed);
    println!("{} of {sent} changes applied", applied.len());
    assert!(
        applied.len() >= 5,
        "only {} of {sent} changes were shown while they kept coming",
        applied.len()
    );
    // The run ends on the newest change applied.
    let state = get(&studio, "/api/runs/washer").json();
    let newest = applied.last().unwrap().1;
    let shown = state["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "THICKNESS")
        .unwrap()["value"]
        .as_f64()
        .unwrap();
    assert!(
        (shown - newest).abs() < 1e-9,
        "shown {shown}, newest applied {newest}"
    );
}

#[test]
fn servers_whose_stdout_reader_left_keep_serving() {
    // Each server prints its address on stdout; the reader is gone before
    // it does (a pipe closed at once), so the print meets a broken pipe.
    for (args, path) in [
        (vec!["serve", "--runs", "runs", "--port"], "/"),
        (vec!["mcp", "--runs", "runs", "--http"], "/mcp"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let at = if args[0] == "serve" {
            port.to_string()
        } else {
            addr.clone()
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_cadloop"))
            .arg("-q")
            .args(&args)
            .arg(&at)
            .current_dir(dir.path())
            .env_remove("CADLOOP_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let began = Instant::now();
        let answered = loop {
            if let Some(status) = child.try_wait().unwrap() {
                let mut said = String::new();
                std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut said)
                    .unwrap();
                panic!("{args:?} ended ({status}): {said}");
            }
            if TcpStream::connect(&addr).is_ok() {
                break request(&addr, "GET", path, &[], b"").status;
            }
            assert!(
                began.elapsed() < Duration::from_secs(60),
                "{args:?} never listened"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        // Answered at all (the MCP endpoint wants a session: 4xx is fine),
        // and still running afterwards.
        assert!(answered < 500, "{args:?}: {answered}");
        std::thread::sleep(Duration::from_millis(300));
        assert!(child.try_wait().unwrap().is_none(), "{args:?} ended");
        let _ = child.kill();
        let _ = child.wait();
    }
}

#[test]
fn foreign_hosts_origins_paths_bodies_and_tokenless_remote_requests_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let studio = start(dir.path(), &[]);
    let addr = studio.addr.clone();

    let rebound = request(&addr, "GET", "/", &[("Host", "attacker.example")], b"");
    assert_eq!(rebound.status, 403);
    let cross = request(
        &addr,
        "POST",
        "/api/examples/washer",
        &[("Host", &addr), ("Origin", "http://attacker.example")],
        b"",
    );
    assert_eq!(cross.status, 403);
    assert!(!dir.path().join("runs/washer").exists(), "nothing ran");

    assert_eq!(post(&studio, "/api/examples/washer", "").status, 200);
    for path in [
        "/runs/washer/files/..%2F..%2Fetc%2Fpasswd",
        "/runs/washer/files/../../etc/passwd",
        "/runs/..%2F..%2Fetc/",
        "/assets/three/..%2F..%2F..%2FCargo.toml",
    ] {
        let reply = get(&studio, path);
        assert!(
            matches!(reply.status, 400 | 404),
            "{path}: {} {}",
            reply.status,
            reply.text()
        );
        assert!(!reply.text().contains("root:"), "{path}");
    }
    let big = format!(r#"{{"values": {{"OUTER_D": "{}"}}}}"#, "9".repeat(100_000));
    assert_eq!(post(&studio, "/api/runs/washer/tweak", &big).status, 413);
    let record: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("runs/washer/run.json")).unwrap())
            .unwrap();
    assert_eq!(
        record["attempts"].as_array().unwrap().len(),
        1,
        "nothing ran"
    );
    drop(studio);

    // On a non-loopback address, nothing without the printed token.
    let remote = start(dir.path(), &["--host", "0.0.0.0"]);
    let token = remote
        .url
        .split("token=")
        .nth(1)
        .expect("the URL carries a token")
        .to_string();
    let addr = remote.addr.clone();
    assert_eq!(
        request(&addr, "GET", "/", &[("Host", &addr)], b"").status,
        401
    );
    let origin = format!("http://{addr}");
    let refused = request(
        &addr,
        "POST",
        "/api/examples/cup",
        &[("Host", &addr), ("Origin", &origin)],
        b"",
    );
    assert_eq!(refused.status, 401);
    assert!(!dir.path().join("runs/cup").exists(), "nothing ran");
    let with_token = request(
        &addr,
        "GET",
        &format!("/?token={token}"),
        &[("Host", &addr)],
        b"",
    );
    assert_eq!(with_token.status, 200);
    assert!(
        with_token.headers.contains("HttpOnly"),
        "{}",
        with_token.headers
    );
    let cookie = format!("cadloop_token={token}");
    let again = request(
        &addr,
        "GET",
        "/",
        &[("Host", &addr), ("Cookie", &cookie)],
        b"",
    );
    assert_eq!(again.status, 200);
}

#[test]
fn a_run_started_in_the_studio_streams_its_stages_refines_and_stops() {
    let server = part_writer(RIGHT, RIGHT.replace("makeCylinder(3,", "makeCylinder(4,"));
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();
    let studio = start(dir.path(), &["--base-url", &url, "--model", "m"]);

    let started = post(
        &studio,
        "/api/runs",
        &serde_json::json!({"prompt": PROMPT}).to_string(),
    );
    assert_eq!(started.status, 200, "{}", started.text());
    let id = started.json()["id"].as_str().unwrap().to_string();
    let states = follow(&studio, &id);
    let last = states.last().unwrap();
    assert_eq!(last["status"], "finished", "{last}");
    assert_eq!(last["outcome"], "match");
    assert!(
        states.iter().any(|s| s["stage"]
            .as_str()
            .is_some_and(|t| t.contains("asking the LLM"))),
        "the stages arrive as they happen: {states:?}"
    );
    assert_eq!(last["history"][0]["verdict"], "match");
    // The code shows as the LLM writes it: a beginning of the reply, counted.
    let whole = format!("{CHECKS}\n{}", fenced(RIGHT));
    let written: Vec<&Value> = states
        .iter()
        .map(|s| &s["writing"])
        .filter(|w| !w.is_null())
        .collect();
    assert!(
        written.iter().any(|w| {
            let text = w["text"].as_str().unwrap();
            !text.is_empty()
                && text.len() < whole.len()
                && whole.starts_with(text)
                && w["tokens"].as_u64() > Some(0)
        }),
        "{written:?}"
    );
    assert_eq!(last["writing"], Value::Null);

    let changed = post(
        &studio,
        &format!("/api/runs/{id}/refine"),
        r#"{"change": "make the hole 8 mm"}"#,
    );
    assert_eq!(changed.status, 200, "{}", changed.text());
    let last = follow(&studio, &id).pop().unwrap();
    assert_eq!(
        (&last["status"], &last["result"]),
        (&Value::from("finished"), &Value::from(2)),
        "{last}"
    );
    let record: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("runs").join(&id).join("run.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(record["requests"][1]["text"], "make the hole 8 mm");
    assert_eq!(server.requests().len(), 4, "generate and critique, twice");

    // A new run with another model and no critique.
    let started = post(
        &studio,
        "/api/runs",
        r#"{"prompt": "a 40 mm cube", "model": "other-coder", "max_refines": 0}"#,
    );
    assert_eq!(started.status, 200, "{}", started.text());
    let other = started.json()["id"].as_str().unwrap().to_string();
    assert_eq!(follow(&studio, &other).pop().unwrap()["status"], "finished");
    let seen = server.requests();
    assert_eq!(seen.len(), 5, "one call: no critique");
    assert_eq!(seen[4].body["model"], "other-coder");
    let record: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("runs").join(&other).join("run.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(record["settings"]["llm"]["model"], "other-coder");
    assert_eq!(record["settings"]["max_refines"], 0);
    let refused = post(
        &studio,
        "/api/runs",
        r#"{"prompt": "a cube", "max_repairs": 99}"#,
    );
    assert_eq!(refused.status, 400);
    drop(studio);

    // A slow endpoint: the stop button ends the run, recorded as stopped.
    let slow = ScriptedLlm::responding(Duration::from_secs(60), |_| Scripted::Reply(fenced(RIGHT)));
    let slow_url = slow.url();
    let studio = start(dir.path(), &["--base-url", &slow_url, "--model", "m"]);
    let started = post(&studio, "/api/runs", r#"{"prompt": "a slow cube"}"#);
    let id = started.json()["id"].as_str().unwrap().to_string();
    // Stopped while it waits on the LLM: once its record says it is running.
    common::wait_until("the run's record", || {
        let state = get(&studio, &format!("/api/runs/{id}"));
        state.status == 200 && state.json()["status"] == "running"
    });
    let stopped = post(&studio, &format!("/api/runs/{id}/stop"), "");
    assert_eq!(stopped.status, 200, "{}", stopped.text());
    let last = follow(&studio, &id).pop().unwrap();
    assert_eq!(last["status"], "stopped", "{last}");
    assert_eq!(last["run_error"], "stopped on request");
}

#[test]
fn without_an_endpoint_new_runs_say_how_to_configure_one() {
    let dir = tempfile::tempdir().unwrap();
    let studio = start(dir.path(), &[]);
    let page = get(&studio, "/");
    assert!(
        page.text().contains("OPENAI_API_KEY"),
        "the page says how to set an endpoint"
    );
    let refused = post(&studio, "/api/runs", r#"{"prompt": "a cube"}"#);
    assert_eq!(refused.status, 409);
    assert!(refused.text().contains("--base-url"), "{}", refused.text());
    assert!(
        std::fs::read_dir(dir.path().join("runs"))
            .unwrap()
            .next()
            .is_none(),
        "nothing was made"
    );
}

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromedriver() -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver is not installed: run scripts/dev setup (apt-get install chromium-driver)");
    for _ in 0..100 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

async fn browser(driver: &Driver) -> fantoccini::Client {
    let profile = tempfile::tempdir().unwrap().keep();
    let capabilities = serde_json::json!({
        "goog:chromeOptions": {
            "binary": chromium(),
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--use-angle=swiftshader",
                "--enable-unsafe-swiftshader", "--window-size=1280,1000", "--disable-dev-shm-usage",
                "--force-device-scale-factor=1", format!("--user-data-dir={}", profile.display()),
            ]
        }
    });
    let serde_json::Value::Object(capabilities) = capabilities else {
        unreachable!()
    };
    fantoccini::ClientBuilder::rustls()
        .unwrap()
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a chromium session")
}

/// Waits up to 60 s for `script` (a JS expression) to be truthy; gives its last value.
async fn until(client: &fantoccini::Client, script: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..600 {
        last = client
            // A page still loading may lack the element yet: not there is not yet.
            .execute(
                &format!("try {{ return {script}; }} catch (e) {{ return false; }}"),
                vec![],
            )
            .await
            .unwrap();
        if last.as_bool() == Some(true) || (last.is_string() && !last.as_str().unwrap().is_empty())
        {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("waited 60 s for {script}: {last}");
}

/// Types `prompt` into the runs page's New run box and presses Generate.
async fn new_run(client: &fantoccini::Client, studio: &Studio, prompt: &str) {
    client.goto(&studio.url).await.unwrap();
    let find = |css| client.find(fantoccini::Locator::Css(css));
    find("#prompt")
        .await
        .unwrap()
        .send_keys(prompt)
        .await
        .unwrap();
    find("#generate").await.unwrap().click().await.unwrap();
}

/// The viewer's canvas as pixels.
/// The viewer's canvas once `done` holds for it, polled for up to a minute.
async fn canvas_until(
    client: &fantoccini::Client,
    what: &str,
    done: impl Fn(&image::RgbImage) -> bool,
) -> image::RgbImage {
    for _ in 0..600 {
        let image = canvas(client).await;
        if done(&image) {
            return image;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("waited too long for {what}");
}

async fn canvas(client: &fantoccini::Client) -> image::RgbImage {
    let element = client
        .find(fantoccini::Locator::Css("#viewer canvas"))
        .await
        .unwrap();
    image::load_from_memory(&element.screenshot().await.unwrap())
        .unwrap()
        .to_rgb8()
}

/// The one run folder in `dir`'s runs folder.
fn only_run(dir: &Path) -> std::path::PathBuf {
    let runs: Vec<_> = std::fs::read_dir(dir.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1, "one run: {runs:?}");
    runs.into_iter().next().unwrap()
}

const PARAMETRIC: &str = "import FreeCAD as App
import Part

LENGTH = 40  # block length, mm
HOLE_D = 6  # hole diameter, mm

block = Part.makeBox(LENGTH, 20, 10)
result = block.cut(Part.makeCylinder(HOLE_D / 2, 10, App.Vector(LENGTH / 2, 10, 0)))
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_a_prompt_becomes_a_part_to_turn_tweak_and_change_in_words() {
    let server = part_writer(PARAMETRIC, PARAMETRIC.replace("HOLE_D = 6", "HOLE_D = 8"));
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();
    let studio = start(dir.path(), &["--base-url", &url, "--model", "m"]);
    let driver = chromedriver();
    let client = browser(&driver).await;

    new_run(&client, &studio, PROMPT).await;
    until(&client, "location.pathname.startsWith('/runs/')").await;
    // The stages arrive while the run goes on, then the result.
    let stage = until(
        &client,
        "(document.getElementById('progress').textContent.match(/asking the LLM[^·]*/) || [''])[0]",
    )
    .await;
    assert!(
        stage.as_str().unwrap().contains("asking the LLM"),
        "{stage}"
    );
    until(
        &client,
        "document.getElementById('progress').dataset.status === 'finished'",
    )
    .await;
    until(&client, "document.getElementById('fact-size') !== null").await;
    // The result's checks are listed; the history counts them.
    until(
        &client,
        "document.querySelectorAll('#checks li.pass').length === 2",
    )
    .await;
    until(
        &client,
        "document.getElementById('history').textContent.includes('checks: 2/2')",
    )
    .await;
    // The model is in the viewer, and a standard view turns it.
    let dark = |image: &image::RgbImage| {
        image
            .pixels()
            .filter(|p| p.0.iter().any(|&c| c < 200))
            .count()
    };
    let iso = canvas_until(&client, "the viewer to draw the model", |iso| {
        dark(iso) > 5_000
    })
    .await;
    client
        .find(fantoccini::Locator::Css("[data-view=top]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let differing = |top: &image::RgbImage| {
        iso.pixels()
            .zip(top.pixels())
            .filter(|(a, b)| a != b)
            .count()
    };
    canvas_until(&client, "the top view to differ from the iso view", |top| {
        differing(top) > 5_000
    })
    .await;

    // A parameter: the facts follow and a tweak attempt appears.
    client
        .execute(
            "const i = document.querySelector('input[type=number][name=LENGTH]'); i.value = '55'; \
             i.dispatchEvent(new Event('change')); return true;",
            vec![],
        )
        .await
        .unwrap();
    until(
        &client,
        "document.getElementById('fact-size').textContent.startsWith('55.00')",
    )
    .await;
    until(
        &client,
        "document.getElementById('history').textContent.includes('tweak')",
    )
    .await;
    // The tweak ran the checks again: the block is no longer 40 mm long.
    let failing = until(
        &client,
        "(document.querySelector('#checks li.fail') || {}).textContent || false",
    )
    .await;
    assert!(
        failing
            .as_str()
            .unwrap()
            .contains("bounding box X = 55 mm, expected 40"),
        "{failing}"
    );

    // A change in words through the change box.
    client
        .find(fantoccini::Locator::Css("#change"))
        .await
        .unwrap()
        .send_keys("make the hole 8 mm")
        .await
        .unwrap();
    client
        .execute(
            "document.getElementById('change-box').requestSubmit(); return true;",
            vec![],
        )
        .await
        .unwrap();
    until(
        &client,
        "document.getElementById('history').textContent.includes('edit')",
    )
    .await;
    until(&client, "document.getElementById('progress').dataset.status === 'finished' && !document.getElementById('progress').textContent.includes('asking')").await;
    let record = common::run_json(&only_run(dir.path()));
    let kinds: Vec<&str> = record["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["generate", "tweak", "edit"]);
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_the_stop_button_stops_a_run_waiting_on_the_llm() {
    // A run on a slow endpoint, stopped with the button.
    let slow = ScriptedLlm::responding(Duration::from_secs(60), |_| {
        Scripted::Reply(fenced(PARAMETRIC))
    });
    let slow_url = slow.url();
    let slow_dir = tempfile::tempdir().unwrap();
    let driver = chromedriver();
    let client = browser(&driver).await;
    let studio = start(slow_dir.path(), &["--base-url", &slow_url, "--model", "m"]);
    new_run(&client, &studio, "a slow cube").await;
    until(
        &client,
        "document.getElementById('progress').textContent.includes('asking the LLM')",
    )
    .await;
    client
        .find(fantoccini::Locator::Css("#stop"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        &client,
        "document.getElementById('progress').dataset.status === 'stopped'",
    )
    .await;
    client.close().await.unwrap();
    // The record says so, and that the LLM never answered.
    let record = common::run_json(&only_run(slow_dir.path()));
    assert_eq!(record["status"], "stopped", "{record}");
    assert_eq!(record["attempts"].as_array().unwrap().len(), 0, "{record}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_a_result_of_parts_lists_them_to_hide_isolate_and_download() {
    let dir = tempfile::tempdir().unwrap();
    let studio = start(dir.path(), &[]);
    let opened = post(&studio, "/api/examples/box_with_lid", "");
    assert_eq!(opened.status, 200, "{}", opened.text());
    let state = opened.json();
    let names: Vec<&str> = state["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["box", "lid"]);
    // Each part's STL downloads.
    let stl = get(&studio, state["parts"][1]["stl"].as_str().unwrap());
    assert_eq!(stl.status, 200);
    let triangles = u32::from_le_bytes(stl.body[80..84].try_into().unwrap());
    assert!(triangles >= 12 && stl.body.len() == 84 + 50 * triangles as usize);

    let driver = chromedriver();
    let client = browser(&driver).await;
    client
        .goto(&format!("{}runs/box_with_lid/", studio.url))
        .await
        .unwrap();
    until(
        &client,
        "document.querySelectorAll('#parts li').length === 2",
    )
    .await;
    let listed = until(
        &client,
        "[...document.querySelectorAll('#parts li .part-name')].map(e => e.textContent).join(',')",
    )
    .await;
    assert_eq!(listed, "box,lid");
    // The viewer shows the lid in its red, the box in its grey.
    let red = |image: &image::RgbImage| {
        image
            .pixels()
            .filter(|p| {
                i32::from(p.0[0]) > i32::from(p.0[1]) + 60
                    && i32::from(p.0[0]) > i32::from(p.0[2]) + 60
            })
            .count()
    };
    let drawn = |image: &image::RgbImage| {
        image
            .pixels()
            .filter(|p| p.0.iter().any(|&c| c < 200))
            .count()
    };
    let both = canvas_until(&client, "the red lid in the viewer", |i| red(i) > 2_000).await;
    let click = |css: &'static str| {
        let client = client.clone();
        async move {
            client
                .execute(
                    &format!("document.querySelector(\"{css}\").click(); return true;"),
                    vec![],
                )
                .await
                .unwrap();
        }
    };
    // Isolating the box hides the lid.
    click("#parts li[data-part=box] .isolate").await;
    let boxed = canvas_until(&client, "the lid hidden", |i| red(i) < 50).await;
    assert!(drawn(&boxed) > 2_000, "the box stays drawn");
    assert_eq!(
        until(
            &client,
            "String(document.querySelector('#parts li[data-part=lid] input').checked === false)"
        )
        .await,
        "true"
    );
    // Show all brings it back; unticking the box leaves the lid alone.
    click("#show-all").await;
    canvas_until(&client, "the lid shown again", |i| red(i) > 2_000).await;
    click("#parts li[data-part=box] input").await;
    let lid = canvas_until(&client, "the box hidden", |i| {
        drawn(i) < drawn(&both) * 8 / 10 && red(i) > 2_000
    })
    .await;
    assert!(red(&lid) > 2_000);
    client.close().await.unwrap();
}
