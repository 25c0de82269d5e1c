//! What cadloop survives, beyond the tests of each part: LLM servers that
//! misbehave in ways the loop's own tests do not script, and hostile input
//! at the front doors (the command line and the MCP server). Each test is
//! a row of the README's table "What cadloop survives".

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::command::cadloop_command;
use common::llm_server::{gap, reply, Scripted, ScriptedLlm};
use common::parts::{fenced, generate_with, PROMPT, RIGHT};
use common::{assert_exit, cadloop, run_json, text};

fn generate(dir: &Path, server: &ScriptedLlm, extra: &[&str]) -> Output {
    let mut args = vec!["--max-refines", "0"];
    args.extend_from_slice(extra);
    generate_with(dir, server, PROMPT, &args)
}

fn rate_limited(seconds: u32) -> Scripted {
    Scripted::Status {
        status: 429,
        headers: vec![("retry-after", seconds.to_string())],
        body: "{\"error\": {\"message\": \"rate limited\", \"type\": \"rate_limit\"}}".into(),
    }
}

#[test]
fn a_storm_of_429s_is_waited_out_as_asked_and_past_the_retries_named() {
    // Four refusals in a row, each asking for a second's pause: waited
    // out, then the reply is used.
    let mut script: Vec<Scripted> = (0..4).map(|_| rate_limited(1)).collect();
    script.push(reply(&fenced(RIGHT)));
    let server = ScriptedLlm::start(script);
    let dir = tempfile::tempdir().unwrap();
    let out = generate(dir.path(), &server, &["--retries", "5"]);
    assert_exit(&out, 0);
    let requests = server.requests();
    assert_eq!(requests.len(), 5);
    for pair in requests.windows(2) {
        let waited = gap(&pair[0], &pair[1]);
        assert!(waited >= Duration::from_millis(950), "{waited:?}");
    }
    assert_eq!(
        run_json(&dir.path().join("run"))["attempts"][0]["code"],
        RIGHT
    );

    // More refusals than retries: the run stops, naming the status and the
    // tries, and leaves no run folder behind.
    let server = ScriptedLlm::start((0..3).map(|_| rate_limited(1)).collect());
    let dir = tempfile::tempdir().unwrap();
    let out = generate(dir.path(), &server, &["--retries", "2"]);
    assert_exit(&out, 2);
    let said = text(&out.stderr);
    assert!(said.contains("429") && said.contains("3 tries"), "{said}");
    assert!(said.contains("rate limited"), "{said}");
    assert!(!said.contains("panicked"), "{said}");
}

#[test]
fn a_reply_without_choices_or_with_an_html_page_is_named_not_a_crash() {
    for (body, says) in [
        (
            r#"{"id": "x", "object": "chat.completion", "choices": []}"#,
            "no choices",
        ),
        (
            "<!doctype html><title>502 Bad Gateway</title>",
            "502 Bad Gateway",
        ),
        ("", "cannot read"),
    ] {
        let server = ScriptedLlm::start(vec![Scripted::Raw(body.into())]);
        let dir = tempfile::tempdir().unwrap();
        let out = generate(dir.path(), &server, &[]);
        assert_exit(&out, 2);
        let said = text(&out.stderr);
        assert!(said.contains(says), "{body}: {said}");
        assert!(
            said.contains(&server.url()),
            "the endpoint is named: {said}"
        );
        assert!(!said.contains("panicked"), "{said}");
    }
}

#[test]
fn hostile_prompt_files_get_a_clear_refusal_or_a_whole_record() {
    let server = ScriptedLlm::start(vec![reply(&fenced(RIGHT)), reply(&fenced(RIGHT))]);
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let run = |file: &str, out: &str| {
        cadloop(
            dir.path(),
            &[
                "generate",
                "--prompt-file",
                file,
                "--base-url",
                &url,
                "--model",
                "m",
                "--max-refines",
                "0",
                "--out",
                out,
            ],
        )
    };
    // Not UTF-8: refused, naming the file, before any request.
    std::fs::write(dir.path().join("latin1.txt"), b"a 20 mm W\xfcrfel\n").unwrap();
    let out = run("latin1.txt", "latin1");
    assert_exit(&out, 2);
    let said = text(&out.stderr);
    assert!(
        said.contains("latin1.txt") && said.contains("UTF-8"),
        "{said}"
    );
    assert!(!dir.path().join("latin1").exists());

    // Empty, or blank: refused.
    std::fs::write(dir.path().join("blank.txt"), " \n\t\n").unwrap();
    let out = run("blank.txt", "blank");
    assert_exit(&out, 2);
    assert!(!dir.path().join("blank").exists());

    // NUL bytes, controls and a line separator: taken as they are, and
    // run.json keeps them whole.
    let odd = "a 40 x 20 x 10 mm block\u{0}with a 6 mm hole\u{7}\u{2028}through the middle";
    std::fs::write(dir.path().join("odd.txt"), odd).unwrap();
    let out = run("odd.txt", "odd");
    assert_exit(&out, 0);
    assert_eq!(run_json(&dir.path().join("odd"))["prompt"], odd);
    assert_eq!(server.requests().len(), 1);
    assert!(server.requests()[0].last_user().contains(odd));

    // A megabyte of prompt: refused with the limit, before any request.
    let big = "a 20 mm cube. ".repeat(75_000);
    std::fs::write(dir.path().join("big.txt"), &big).unwrap();
    let out = run("big.txt", "big");
    assert_exit(&out, 2);
    let said = text(&out.stderr);
    assert!(said.contains("longer than 20000 characters"), "{said}");
    assert!(!dir.path().join("big").exists());
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn cadloop_killed_at_any_moment_leaves_run_json_whole_and_the_folder_free() {
    // Each answer comes after 100 ms: a run (code, critique, rewrite,
    // critique) writes run.json a dozen times in about two seconds.
    let server = ScriptedLlm::responding(Duration::from_millis(100), |seen| {
        let ask = seen.last_user();
        if ask.contains("VERDICT: MATCH") {
            let verdict = if ask.contains("makeBox(40, 20, 12)") {
                "VERDICT: MATCH"
            } else {
                "VERDICT: MISMATCH\nIt should be 12 mm tall."
            };
            Scripted::Reply(verdict.into())
        } else if seen.messages().len() > 2 {
            Scripted::Reply(fenced(
                &RIGHT.replace("makeBox(40, 20, 10)", "makeBox(40, 20, 12)"),
            ))
        } else {
            Scripted::Reply(fenced(RIGHT))
        }
    });
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let mut recorded = 0;
    for trial in 0..24u64 {
        let out = format!("run-{trial}");
        let mut child = cadloop_command(dir.path())
            .args(["-q", "generate", PROMPT, "--base-url", &url, "--model", "m"])
            .args(["--max-refines", "2", "--out", &out])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(100 + trial * 90));
        let _ = child.kill();
        let _ = child.wait();
        let run = dir.path().join(&out);
        if !run.join("run.json").exists() {
            continue;
        }
        recorded += 1;
        // Old or new, never half; and the folder is not left locked.
        let record = cadloop::report::read_run(&run)
            .unwrap_or_else(|e| panic!("trial {trial}: {}", cadloop::error_chain(&e)));
        assert!(!record.requests.is_empty());
        if let Err(err) = cadloop::run::RunDir::open(&run) {
            panic!("trial {trial}: {}", cadloop::error_chain(&err));
        }
    }
    assert!(
        recorded >= 12,
        "only {recorded} of 24 kills came after run.json was written"
    );
}

/// What one request of the load got: its kind, status (0: no answer) and time.
struct Answer {
    kind: &'static str,
    status: u16,
    ms: f64,
}

#[test]
fn the_studio_under_load_answers_everyone_and_the_newest_tweak_wins() {
    const LOAD: Duration = Duration::from_secs(60);
    let dir = tempfile::tempdir().unwrap();
    let studio = Arc::new(common::studio::start(dir.path(), &[]));
    assert_eq!(
        common::studio::post(&studio, "/api/examples/flange", "").status,
        200
    );
    let pid = studio.pid();
    let stop = Arc::new(AtomicBool::new(false));
    let answers = Arc::new(Mutex::new(Vec::<Answer>::new()));
    // Tweaks that were applied: (when the answer came, the thickness asked).
    let applied = Arc::new(Mutex::new(Vec::<(Instant, f64)>::new()));
    let counter = Arc::new(AtomicU64::new(0));

    // A slow client: its request's headers come a byte a second.
    let slow = {
        let (addr, stop) = (studio.addr.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut stream = std::net::TcpStream::connect(&addr).unwrap();
            let head = format!("GET / HTTP/1.1\r\nHost: {addr}\r\nX-Slow: ");
            for byte in head.bytes().chain(std::iter::repeat(b'x')) {
                if stop.load(Ordering::Relaxed) || stream.write_all(&[byte]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    };
    let mut threads = Vec::new();
    // 200 clients at once: 20 following the run's live events, 170 loading
    // its page and state (each every 0 to 200 ms: about 1700 requests a
    // second in all), and 10 tweaking it, each every 0.5 to 1.5 s (about
    // ten tweaks a second; one that arrives while an older one builds
    // supersedes it, unless changes have waited longer than a rebuild takes).
    for n in 0..200 {
        let (studio, stop, answers, applied, counter) = (
            studio.clone(),
            stop.clone(),
            answers.clone(),
            applied.clone(),
            counter.clone(),
        );
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // Each client's pause between requests.
                std::thread::sleep(Duration::from_millis(match n {
                    0..20 => 0,
                    20..190 => fastrand::u64(0..200),
                    _ => 500 + fastrand::u64(0..1000),
                }));
                let started = Instant::now();
                let (kind, status) = match n {
                    0..20 => (
                        "events",
                        common::studio::get(&studio, "/api/runs/flange/events").status,
                    ),
                    20..190 => {
                        let path = if n % 2 == 0 {
                            "/runs/flange/"
                        } else {
                            "/api/runs/flange"
                        };
                        ("page", common::studio::get(&studio, path).status)
                    }
                    _ => {
                        let thickness = 5.0 + counter.fetch_add(1, Ordering::Relaxed) as f64 * 0.01;
                        let body = format!("{{\"values\": {{\"THICKNESS\": {thickness}}}}}");
                        let reply = common::studio::post(&studio, "/api/runs/flange/tweak", &body);
                        if reply.status == 200 && reply.json()["error"].is_null() {
                            applied.lock().unwrap().push((Instant::now(), thickness));
                        }
                        ("tweak", reply.status)
                    }
                };
                let ms = started.elapsed().as_secs_f64() * 1e3;
                answers.lock().unwrap().push(Answer { kind, status, ms });
            }
        }));
    }
    let began = Instant::now();
    let mut peak_mib = 0f64;
    while began.elapsed() < LOAD {
        peak_mib = peak_mib.max(common::memory::tree_rss_mib(pid));
        std::thread::sleep(Duration::from_millis(500));
    }
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().unwrap();
    }
    slow.join().unwrap();

    let answers = answers.lock().unwrap();
    // Every request answered: 200, or 409 for a tweak a newer one superseded.
    let failed: Vec<String> = answers
        .iter()
        .filter(|a| !(a.status == 200 || (a.kind == "tweak" && a.status == 409)))
        .map(|a| format!("{} {}", a.kind, a.status))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} failed: {:?}",
        failed.len(),
        answers.len(),
        &failed[..failed.len().min(10)]
    );
    for kind in ["events", "page", "tweak"] {
        let mut ms: Vec<f64> = answers
            .iter()
            .filter(|a| a.kind == kind)
            .map(|a| a.ms)
            .collect();
        ms.sort_by(f64::total_cmp);
        assert!(ms.len() >= 20, "{kind}: only {} answers", ms.len());
        println!(
            "{kind}: {} answered, p50 {:.0} ms, p99 {:.0} ms",
            ms.len(),
            ms[ms.len() / 2],
            ms[ms.len() * 99 / 100]
        );
    }
    let superseded = answers.iter().filter(|a| a.status == 409).count();
    let applied = applied.lock().unwrap();
    println!(
        "tweaks applied: {}, superseded: {superseded}; peak memory, server and workers: {peak_mib:.0} MiB",
        applied.len()
    );
    // Many were built (studio.rs `tweaks_coming_faster_than_rebuilds…`
    // holds the studio to showing results under a stream of changes), and
    // the run ends on the newest of them.
    assert!(applied.len() >= 2, "{} applied", applied.len());
    let newest = applied
        .iter()
        .max_by_key(|(at, _)| *at)
        .expect("some tweak applied")
        .1;
    let record = cadloop::report::read_run(&dir.path().join("runs/flange")).unwrap();
    let chosen = record.chosen_attempt().expect("the run has a result");
    let thickness = chosen
        .result
        .parameters
        .iter()
        .find(|p| p.name == "THICKNESS")
        .unwrap()
        .value
        .as_f64()
        .unwrap();
    assert!(
        (thickness - newest).abs() < 1e-9,
        "the run has {thickness}, the newest applied {newest}"
    );
    // Memory stays bounded: the server and its two FreeCAD workers.
    assert!(peak_mib < 1536.0, "{peak_mib} MiB");
}

#[test]
fn a_server_gone_in_the_middle_of_a_run_leaves_it_recorded_and_refine_goes_on() {
    // The code comes; when the critique is asked for, the server is gone.
    let server = ScriptedLlm::start(vec![reply(&fenced(RIGHT)), Scripted::Gone]);
    let dir = tempfile::tempdir().unwrap();
    let out = generate_with(
        dir.path(),
        &server,
        PROMPT,
        &["--max-refines", "1", "--retries", "1"],
    );
    // The run keeps its solid as an unjudged result and says why it stopped.
    assert_exit(&out, 0);
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        said.contains(&format!("cannot reach the LLM endpoint {}", server.url())),
        "{said}"
    );
    assert!(!said.contains("panicked"), "{said}");
    let record = run_json(&dir.path().join("run"));
    assert_eq!(record["outcome"], "unverified", "{record}");
    assert_eq!(record["attempts"].as_array().unwrap().len(), 1, "{record}");
    assert_eq!(record["attempts"][0]["result"]["outcome"], "ok", "{record}");
    assert!(
        record["error"].as_str().unwrap().contains(&server.url()),
        "{record}"
    );

    // With the server back (another one here), a change goes on from the
    // solid the run has.
    let wider = RIGHT.replace("makeCylinder(3,", "makeCylinder(4,");
    let again = ScriptedLlm::start(vec![reply(&fenced(&wider)), reply("VERDICT: MATCH")]);
    let url = again.url();
    let out = cadloop(
        dir.path(),
        &[
            "refine",
            "run",
            "make the hole 8 mm",
            "--base-url",
            &url,
            "--model",
            "m",
            "--max-refines",
            "1",
        ],
    );
    assert_exit(&out, 0);
    let record = run_json(&dir.path().join("run"));
    assert_eq!(record["attempts"].as_array().unwrap().len(), 2, "{record}");
    assert_eq!(record["attempts"][1]["parent"], 1, "{record}");
    assert_eq!(record["outcome"], "match", "{record}");
}

#[test]
fn a_run_folder_deleted_while_the_studio_shows_it_is_gone_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let studio = common::studio::start(dir.path(), &[]);
    for example in ["washer", "flange"] {
        let opened = common::studio::post(&studio, &format!("/api/examples/{example}"), "");
        assert_eq!(opened.status, 200, "{}", opened.text());
    }
    std::fs::remove_dir_all(dir.path().join("runs/washer")).unwrap();
    // Everything about the deleted run says it is not there.
    for (method, path, body) in [
        ("GET", "/runs/washer/", ""),
        ("GET", "/api/runs/washer", ""),
        ("GET", "/api/runs/washer/events", ""),
        ("GET", "/runs/washer/files/model.glb", ""),
        (
            "POST",
            "/api/runs/washer/tweak",
            r#"{"values": {"OUTER_D": 30}}"#,
        ),
        ("POST", "/api/runs/washer/stop", ""),
    ] {
        let reply = if method == "GET" {
            common::studio::get(&studio, path)
        } else {
            common::studio::post(&studio, path, body)
        };
        assert!(
            matches!(reply.status, 404 | 409),
            "{method} {path}: {} {}",
            reply.status,
            reply.text()
        );
        assert!(!reply.text().is_empty(), "{method} {path}: no reason given");
    }
    assert!(
        !dir.path().join("runs/washer").exists(),
        "nothing was made again"
    );
    // The list and the other run go on.
    let listed = common::studio::get(&studio, "/");
    assert_eq!(listed.status, 200);
    assert!(listed.text().contains("/runs/flange/") && !listed.text().contains("/runs/washer/"));
    let tweaked = common::studio::post(
        &studio,
        "/api/runs/flange/tweak",
        r#"{"values": {"THICKNESS": 12}}"#,
    );
    assert_eq!(tweaked.status, 200, "{}", tweaked.text());
}

/// A boolean of 784 spheres: a few hundred MiB inside OpenCASCADE.
const MANY_SPHERES: &str = "import FreeCAD as App
import Part

N = 14
spheres = [Part.makeSphere(3, App.Vector(i * 4, j * 4, k * 4)) for i in range(N) for j in range(N) for k in range(4)]
result = spheres[0].fuse(spheres[1:])
";

#[tokio::test]
async fn a_worker_past_its_memory_limit_in_a_boolean_fails_alone_saying_so() {
    let mut settings = common::settings(1);
    settings.memory_limit_mib = 300;
    let pool = cadloop::executor::Pool::start(settings).await.unwrap();
    let (output, _dir) =
        common::run_with_timeout(&pool, MANY_SPHERES, Some(Duration::from_secs(120))).await;
    // OpenCASCADE either aborts when an allocation fails (out of memory,
    // said with the allocator's words) or catches it and fails the boolean
    // (an exception at the line); never a script said to end the process.
    use cadloop::executor::ErrorKind;
    match &output.report.outcome {
        cadloop::executor::Outcome::Error {
            kind,
            message,
            line,
            ..
        } => {
            assert!(!message.contains("os._exit"), "{message}");
            match kind {
                ErrorKind::OutOfMemory => assert!(message.contains("memory"), "{message}"),
                ErrorKind::Exception => assert_eq!(*line, Some(6), "{message}"),
                other => panic!("{other}: {message}"),
            }
        }
        other => panic!("the boolean fit in 300 MiB: {other:?}"),
    }
    // The pool goes on with a fresh worker.
    let (next, _dir) = common::run(&pool, common::BOX_MINUS_CYLINDER).await;
    assert!(next.report.is_ok(), "{:?}", next.report.outcome);
    pool.shutdown().await;
}

/// The worker processes this test process started.
fn worker_pids() -> Vec<i32> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // pid (comm) state ppid …: the comm may hold spaces, so split after it.
            let ppid = stat.rsplit(')').next()?.split_whitespace().nth(1)?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            (ppid == me && String::from_utf8_lossy(&cmdline).contains("worker")).then_some(pid)
        })
        .collect()
}

/// A part that takes a while to build, check and export: 50 spheres fused.
const SLOW_PART: &str = "import FreeCAD as App
import Part

N = 5
spheres = [Part.makeSphere(3, App.Vector(i * 4, j * 4, k * 4)) for i in range(N) for j in range(N) for k in range(2)]
result = spheres[0].fuse(spheres[1:])
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_at_any_moment_of_a_job_fails_that_job_alone() {
    let pool = common::pool(1).await;
    let checks = cadloop::checks::Checks::parse(
        "CHECKS = [bbox(22, 22, 10), volume(10000, rel=0.5), symmetric(\"yz\"), wall(6, at=(0, 0, 0)), faces(\"sphere\", min=1)]",
    )
    .unwrap()
    .calls;
    let job = |dir: &tempfile::TempDir| cadloop::executor::Job {
        code: SLOW_PART.to_string(),
        dir: dir.path().to_path_buf(),
        timeout: Some(Duration::from_secs(120)),
        inputs: Vec::new(),
        checks: checks.clone(),
    };
    // Unkilled: how long the script, its checks and the exports take.
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let whole = pool.run(job(&dir)).await.unwrap();
    let took = started.elapsed();
    println!("the job takes {took:?} unkilled");
    assert!(whole.report.is_ok(), "{:?}", whole.report.outcome);
    assert_eq!(whole.report.checks.len(), 5);

    let mut failed = 0;
    for n in 1..=10u32 {
        let dir = tempfile::tempdir().unwrap();
        let running = pool.run(job(&dir));
        let killer = async {
            tokio::time::sleep(took * n / 11).await;
            for pid in worker_pids() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        };
        let (output, ()) = tokio::join!(running, killer);
        let output = output.unwrap();
        if let cadloop::executor::Outcome::Error { message, .. } = &output.report.outcome {
            failed += 1;
            assert!(!message.is_empty());
        }
        // The next job gets a fresh worker and builds.
        let (next, _dir) = common::run(&pool, common::BOX_MINUS_CYLINDER).await;
        assert!(
            next.report.is_ok(),
            "after kill {n}: {:?}",
            next.report.outcome
        );
    }
    // At least half the kills land while the job runs (the script, its
    // checks, its exports; a warm worker may finish before the later ones).
    assert!(failed >= 5, "only {failed} of 10 kills failed their job");
    pool.shutdown().await;
}

#[test]
fn hostile_prompts_to_the_studio_are_refused_or_kept_whole() {
    let server = common::parts::part_writer(RIGHT, RIGHT.to_string());
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let studio = common::studio::start(
        dir.path(),
        &["--base-url", &url, "--model", "m", "--max-refines", "0"],
    );
    let post = |body: &[u8]| {
        let origin = format!("http://{}", studio.addr);
        common::http::request(
            &studio.addr,
            "POST",
            "/api/runs",
            &[
                ("Host", &studio.addr),
                ("Origin", &origin),
                ("Content-Type", "application/json"),
            ],
            body,
        )
    };
    // A megabyte: over the body limit. 30,000 characters: over the prompt's.
    let big = serde_json::json!({"prompt": "a 20 mm cube. ".repeat(75_000)}).to_string();
    assert_eq!(post(big.as_bytes()).status, 413);
    let long = serde_json::json!({"prompt": "x".repeat(30_000)}).to_string();
    let refused = post(long.as_bytes());
    assert_eq!(refused.status, 400);
    assert!(
        refused.text().contains("longer than 20000"),
        "{}",
        refused.text()
    );
    // Not UTF-8, not JSON: refused.
    assert_eq!(post(b"{\"prompt\": \"W\xfcrfel\"}").status, 400);
    assert_eq!(post(b"prompt=cube").status / 100, 4);
    assert!(server.requests().is_empty(), "nothing reached the LLM");
    // NUL bytes and controls: taken whole into the run.
    let odd = "a 40 x 20 x 10 mm block\u{0}with a 6 mm hole\u{7} through the middle";
    let started = post(serde_json::json!({"prompt": odd}).to_string().as_bytes());
    assert_eq!(started.status, 200, "{}", started.text());
    let id = started.json()["id"].as_str().unwrap().to_string();
    let states = common::studio::follow(&studio, &id);
    assert_eq!(states.last().unwrap()["status"], "finished", "{states:?}");
    assert_eq!(run_json(&dir.path().join("runs").join(&id))["prompt"], odd);
}
