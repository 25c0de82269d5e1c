//! report.html checked in a real browser: Debian's chromium, headless, loads
//! the page from disk (no network), and what it draws and parses is examined.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::llm_server::{reply, ScriptedLlm};
use common::parts::{fenced, generate_with, BUGGY, PROMPT, RIGHT};
use common::{assert_exit, cadloop, chromium};
use image::RgbImage;

/// Runs headless chromium on `page` with `args` (its own profile, killed after two minutes).
fn browse(page: &Path, args: &[String]) -> Vec<u8> {
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--disable-dev-shm-usage",
            "--force-device-scale-factor=1",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(&url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut bytes).unwrap();
        bytes
    });
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "chromium failed on {url}: {status}");
            break;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("chromium did not finish with {url} in two minutes");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    reader.join().unwrap()
}

fn screenshot(page: &Path, width: u32, height: u32) -> RgbImage {
    let shot = page.with_file_name("shot.png");
    let _ = std::fs::remove_file(&shot);
    browse(
        page,
        &[
            format!("--window-size={width},{height}"),
            format!("--screenshot={}", shot.display()),
        ],
    );
    let image = image::open(&shot)
        .expect("chromium wrote the screenshot")
        .to_rgb8();
    assert_eq!(image.dimensions(), (width, height));
    image
}

/// The page as the browser parsed it (after anything in it could have run).
fn dom(page: &Path) -> String {
    String::from_utf8(browse(page, &["--dump-dom".to_string()])).unwrap()
}

const MAGENTA: [u8; 3] = [255, 0, 255];

/// The smallest rectangle holding every pixel of `colour` (x, y, w, h), and their count.
fn find(image: &RgbImage, colour: [u8; 3]) -> Option<((u32, u32, u32, u32), usize)> {
    let mut bounds: Option<(u32, u32, u32, u32)> = None;
    let mut count = 0;
    for (x, y, p) in image.enumerate_pixels() {
        if p.0 == colour {
            count += 1;
            bounds = Some(match bounds {
                None => (x, y, x, y),
                Some((x0, y0, x1, y1)) => (x0.min(x), y0.min(y), x1.max(x), y1.max(y)),
            });
        }
    }
    bounds.map(|(x0, y0, x1, y1)| ((x0, y0, x1 - x0 + 1, y1 - y0 + 1), count))
}

#[test]
fn the_report_of_a_run_shows_its_sheet_in_a_browser() {
    let server = ScriptedLlm::start(vec![reply(&fenced(RIGHT)), reply("VERDICT: MATCH")]);
    let dir = tempfile::tempdir().unwrap();
    let out = generate_with(dir.path(), &server, PROMPT, &[]);
    assert_exit(&out, 0);
    let run = dir.path().join("run");
    let page = run.join("report.html");
    let (width, height) = (1400, 1400);
    let shown = screenshot(&page, width, height);
    assert!(find(&shown, MAGENTA).is_none());

    // Where the page draws the sheet: swap in a magenta image of the same size.
    let sheet = image::open(run.join("sheet.png")).unwrap().to_rgb8();
    let (sw, sh) = sheet.dimensions();
    let real = std::fs::read(run.join("sheet.png")).unwrap();
    RgbImage::from_pixel(sw, sh, image::Rgb(MAGENTA))
        .save(run.join("sheet.png"))
        .unwrap();
    let marked = screenshot(&page, width, height);
    std::fs::write(run.join("sheet.png"), real).unwrap();
    let ((x, y, w, h), count) = find(&marked, MAGENTA).expect("the sheet is on the first screen");
    assert_eq!(
        count,
        (w * h) as usize,
        "the sheet is drawn whole, unhidden"
    );
    assert!(w >= width / 2, "the sheet is drawn large: {w} px wide");
    let ratio = (w as f64 / h as f64) / (sw as f64 / sh as f64);
    assert!(
        (ratio - 1.0).abs() < 0.02,
        "the sheet keeps its proportions"
    );

    // In that place the first screenshot has the real sheet, scaled.
    let expected = image::imageops::resize(&sheet, w, h, image::imageops::FilterType::Triangle);
    let drawn = image::imageops::crop_imm(&shown, x, y, w, h).to_image();
    let diff: u64 = expected
        .pixels()
        .zip(drawn.pixels())
        .map(|(a, b)| (0..3).map(|i| a.0[i].abs_diff(b.0[i]) as u64).sum::<u64>())
        .sum();
    let mean = diff as f64 / (w * h * 3) as f64;
    assert!(
        mean < 6.0,
        "the drawn sheet differs from sheet.png by {mean:.1} levels on average"
    );

    // The text a designer reads is there, parsed as such.
    let parsed = dom(&page);
    assert!(parsed.contains("40.00 × 20.00 × 10.00 mm"), "{parsed}");
    assert!(
        parsed.contains("<a href=\"model.step\" download=\"\">model.step</a>"),
        "{parsed}"
    );
}

#[test]
fn the_report_of_a_failed_run_shows_the_error_and_a_script_prompt_as_text() {
    let prompt = "a cube <script>document.title='taken'</script><img src=x onerror=\"document.title='taken'\"> of 10 mm";
    let server = ScriptedLlm::start(vec![reply(&fenced(BUGGY))]);
    let dir = tempfile::tempdir().unwrap();
    let out = generate_with(dir.path(), &server, prompt, &["--max-repairs", "0"]);
    assert_exit(&out, 1);
    let page = dir.path().join("run/report.html");
    let parsed = dom(&page);
    assert!(
        !parsed.contains("taken</title>"),
        "the prompt ran as code: {parsed}"
    );
    assert!(!parsed.contains("<script"), "{parsed}");
    assert!(!parsed.contains("<img src=\"x\""), "{parsed}");
    assert!(
        parsed.contains("a cube &lt;script&gt;document.title='taken'&lt;/script&gt;&lt;img src=x"),
        "{parsed}"
    );
    assert!(parsed.contains("<strong>failed</strong>"), "{parsed}");
    assert!(
        parsed.contains("<strong>exception</strong> at line 5"),
        "{parsed}"
    );
    assert!(
        parsed.contains("NameError: name 'hole' is not defined"),
        "{parsed}"
    );
    assert!(parsed.contains("No model was built"), "{parsed}");

    // It draws: text on a white page, no broken layout that leaves it blank.
    let shot = screenshot(&page, 1000, 800);
    let dark = shot
        .pixels()
        .filter(|p| p.0.iter().all(|&c| c < 100))
        .count();
    assert!(dark > 1000, "the page has text: {dark} dark pixels");
}

#[test]
fn exec_writes_a_report_of_its_script() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("part.py"), RIGHT).unwrap();
    let out = cadloop(dir.path(), &["exec", "part.py", "--out", "out"]);
    assert_exit(&out, 0);
    let parsed = dom(&dir.path().join("out/report.html"));
    assert!(parsed.contains("<h1>part.py</h1>"), "{parsed}");
    assert!(parsed.contains("7717.26 mm³"), "{parsed}");
    assert!(parsed.contains("src=\"sheet.png\""), "{parsed}");
    assert!(
        parsed.contains("Part.makeCylinder(3, 10, App.Vector(20, 10, 0))"),
        "{parsed}"
    );
}
