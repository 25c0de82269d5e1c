//! Benchmark: seven 384² views of a finely tessellated torus, 100k and 1M
//! triangles. Prints the median time for all seven views on the machine's
//! cores and, as the baseline in the same run, on one thread; the goal is
//! ≤ 60 ms for 100k triangles on 2 cores. PNG encoding is timed apart.
//!
//! Run with `cargo bench --bench render` (or `scripts/dev bench`).

use std::time::Instant;

use cadloop::mesh::Mesh;
use cadloop::render::{self, RenderSettings, View};

/// A torus (major radius 30, minor 10) with `n × n` quads, 2n² triangles.
fn torus(n: u32) -> Mesh {
    let (major, minor) = (30.0f32, 10.0f32);
    let mut vertices = Vec::with_capacity((n * n) as usize);
    for i in 0..n {
        let u = i as f32 / n as f32 * std::f32::consts::TAU;
        for j in 0..n {
            let v = j as f32 / n as f32 * std::f32::consts::TAU;
            let r = major + minor * v.cos();
            vertices.push([r * u.cos(), r * u.sin(), minor * v.sin()]);
        }
    }
    let mut triangles = Vec::with_capacity((2 * n * n) as usize);
    for i in 0..n {
        for j in 0..n {
            let at = |a: u32, b: u32| (a % n) * n + (b % n);
            triangles.push([at(i, j), at(i + 1, j), at(i + 1, j + 1)]);
            triangles.push([at(i, j), at(i + 1, j + 1), at(i, j + 1)]);
        }
    }
    // Each triangle winds around the outward normal (∂u × ∂v points away from the tube's axis).
    Mesh {
        vertices,
        triangles,
        closed: true,
        marked: Vec::new(),
        parts: Vec::new(),
    }
}

/// (median, fastest) of `rounds` timed renders of all seven views, after one warm-up.
fn time_views(mesh: &Mesh, rounds: usize) -> (f64, f64) {
    let settings = RenderSettings::default();
    render::render(mesh, &settings).unwrap();
    let mut runs: Vec<f64> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            let views = render::render(mesh, &settings).unwrap();
            std::hint::black_box(views);
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    (runs[runs.len() / 2], runs[0])
}

fn main() {
    let cores = rayon::current_num_threads();
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    println!(
        "render benchmark: 7 views of 384² (2×2 samples per pixel); median (fastest) of the runs"
    );
    for (n, rounds) in [(224u32, 21usize), (708, 5)] {
        let mesh = torus(n);
        let (parallel, parallel_best) = time_views(&mesh, rounds);
        let (serial, serial_best) = one_thread.install(|| time_views(&mesh, rounds));
        println!(
            "{:>9} triangles: {parallel:6.1} ({parallel_best:6.1}) ms on {cores} threads, \
             {serial:6.1} ({serial_best:6.1}) ms on 1 thread (baseline), speed-up {:.2}×",
            mesh.triangles.len(),
            serial / parallel
        );
        if n == 224 {
            println!(
                "                    goal ≤ 60 ms on 2 cores: {:.2}× of the budget used",
                parallel / 60.0
            );
        }
    }
    let mesh = torus(224);
    let views = render::render(&mesh, &RenderSettings::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let start = Instant::now();
    for view in View::ALL {
        render::write_png(
            &dir.path().join(format!("{}.png", view.name())),
            views.get(view),
        )
        .unwrap();
    }
    println!(
        "PNG encoding of the seven views: {:.1} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
}
