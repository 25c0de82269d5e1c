//! Volumetric IoU of two meshes on a voxel grid.

use super::{Point, Shape};

/// Volumetric IoU on a grid of `n` cells along each side of the common box.
pub(super) fn voxel_iou(a: &Shape, b: &Shape, n: usize) -> f64 {
    let (al, ah) = a.bbox();
    let (bl, bh) = b.bbox();
    let lo = [0, 1, 2].map(|k| al[k].min(bl[k]));
    let hi = [0, 1, 2].map(|k| ah[k].max(bh[k]));
    let grid = Grid { lo, hi, n };
    let inside_a = grid.inside(a);
    let inside_b = grid.inside(b);
    let both = inside_a
        .iter()
        .zip(&inside_b)
        .filter(|(x, y)| **x && **y)
        .count();
    let either = inside_a
        .iter()
        .zip(&inside_b)
        .filter(|(x, y)| **x || **y)
        .count();
    if either == 0 {
        0.0
    } else {
        both as f64 / either as f64
    }
}

struct Grid {
    lo: Point,
    hi: Point,
    n: usize,
}

/// Cell centres are nudged off the exact grid by these fractions of a cell,
/// so rays do not run exactly along the edges of axis-aligned meshes.
const NUDGE: [f64; 3] = [0.013_7, 0.021_9, 0.017_3];

impl Grid {
    fn centre(&self, axis: usize, i: usize) -> f64 {
        let step = (self.hi[axis] - self.lo[axis]) / self.n as f64;
        self.lo[axis] + (i as f64 + 0.5 + NUDGE[axis]) * step
    }

    /// Cells inside `shape` (index x + n·(y + n·z)), by the two-of-three ray vote.
    fn inside(&self, shape: &Shape) -> Vec<bool> {
        let n = self.n;
        let mut votes = vec![0u8; n * n * n];
        for axis in 0..3 {
            let (u, v) = ((axis + 1) % 3, (axis + 2) % 3);
            // Crossings of each ray (along `axis`, at cell centres in u, v).
            let mut hits: Vec<Vec<f64>> = vec![Vec::new(); n * n];
            for t in &shape.triangles {
                let [p, q, r] = shape.corners(t);
                let umin = p[u].min(q[u]).min(r[u]);
                let umax = p[u].max(q[u]).max(r[u]);
                let vmin = p[v].min(q[v]).min(r[v]);
                let vmax = p[v].max(q[v]).max(r[v]);
                for i in self.range(u, umin, umax) {
                    let cu = self.centre(u, i);
                    for j in self.range(v, vmin, vmax) {
                        let cv = self.centre(v, j);
                        if let Some(w) = ray_hit(p, q, r, u, v, axis, cu, cv) {
                            hits[i + n * j].push(w);
                        }
                    }
                }
            }
            for i in 0..n {
                for j in 0..n {
                    let ray = &mut hits[i + n * j];
                    if ray.is_empty() {
                        continue;
                    }
                    ray.sort_by(f64::total_cmp);
                    for k in 0..n {
                        let w = self.centre(axis, k);
                        let crossings = ray.partition_point(|&h| h < w);
                        if crossings % 2 == 1 {
                            let mut cell = [0; 3];
                            cell[axis] = k;
                            cell[u] = i;
                            cell[v] = j;
                            votes[cell[0] + n * (cell[1] + n * cell[2])] += 1;
                        }
                    }
                }
            }
        }
        votes.into_iter().map(|v| v >= 2).collect()
    }

    /// Cell indices along `axis` whose centres lie in [min, max].
    fn range(&self, axis: usize, min: f64, max: f64) -> std::ops::Range<usize> {
        let step = (self.hi[axis] - self.lo[axis]) / self.n as f64;
        if step <= 0.0 {
            return 0..0;
        }
        let first = ((min - self.lo[axis]) / step - 0.5 - NUDGE[axis])
            .ceil()
            .max(0.0) as usize;
        let last = ((max - self.lo[axis]) / step - 0.5 - NUDGE[axis]).floor();
        if last < 0.0 {
            return 0..0;
        }
        first..(last as usize + 1).min(self.n)
    }
}

/// Where the ray at (cu, cv), running along `axis`, crosses triangle pqr.
#[allow(clippy::too_many_arguments)]
fn ray_hit(
    p: Point,
    q: Point,
    r: Point,
    u: usize,
    v: usize,
    axis: usize,
    cu: f64,
    cv: f64,
) -> Option<f64> {
    // Barycentric coordinates of (cu, cv) in the triangle's projection.
    let det = (q[u] - p[u]) * (r[v] - p[v]) - (r[u] - p[u]) * (q[v] - p[v]);
    if det.abs() < 1e-300 {
        return None;
    }
    let s = ((cu - p[u]) * (r[v] - p[v]) - (r[u] - p[u]) * (cv - p[v])) / det;
    let t = ((q[u] - p[u]) * (cv - p[v]) - (cu - p[u]) * (q[v] - p[v])) / det;
    if s < 0.0 || t < 0.0 || s + t > 1.0 {
        return None;
    }
    Some(p[axis] + s * (q[axis] - p[axis]) + t * (r[axis] - p[axis]))
}
