//! Geometric scores of a result mesh against a reference mesh, as the
//! CADPrompt benchmark defines them, plus a volumetric IoU.
//!
//! Stage in the flow: after a run, `bench` scores the chosen model's STL
//! against the case's reference. The procedure, in order:
//!
//! 1. **Normalise** each mesh on its own: the centre of its bounding box to
//!    the origin, then a uniform scale so that the longest side of the box is 1.
//! 2. **Align** (`Align::Icp`, the default): rigid ICP of the result onto the
//!    reference. References and results often model the same part about
//!    different axes (DeepCAD's sketch planes are arbitrary), and CADPrompt
//!    aligns before measuring; ICP starts from each of the 24 rotations that
//!    map the axes onto the axes and keeps the best, so a quarter turn is not
//!    a local minimum. `Align::None` measures the normalised meshes as they are.
//! 3. **Sample** `samples` points (default 1,000) on each surface, area
//!    weighted, from a generator seeded with `seed`: the same seed draws the
//!    same sequence for both meshes, and the same mesh always gives the same
//!    points.
//! 4. **pcd** = (mean distance from each result point to the nearest
//!    reference point + mean from each reference point to the nearest result
//!    point) / 2; **hausdorff** = the larger of the two directed maxima.
//! 5. **iogt** = volume of the intersection of the two (aligned, normalised)
//!    bounding boxes ÷ volume of the reference's box.
//! 6. **iou** = |A ∩ B| / |A ∪ B| over a voxel grid (`voxels` cells along
//!    each side of the box holding both meshes), a cell being inside a mesh
//!    when at least two of three rays through its centre, along X, Y and Z,
//!    cross the surface an odd number of times before reaching it (a vote, so
//!    one ray grazing an edge or slipping through a crack does not flip it).
//!
//! A case with no valid solid scores [`Scores::failed`]: pcd √3 (the diagonal
//! of the unit cube, the largest distance two normalised meshes can have),
//! hausdorff √3, iogt 0, iou 0.

use kiddo::{ImmutableKdTree, SquaredEuclidean};
use nalgebra::{Matrix3, Rotation3, Vector3};
use serde::{Deserialize, Serialize};

use crate::mesh::Mesh;

/// How the result is aligned to the reference before measuring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Align {
    None,
    Icp,
}

/// How to measure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricSettings {
    pub samples: usize,
    pub seed: u64,
    pub align: Align,
    /// Voxel cells along each side for the IoU.
    pub voxels: usize,
}

impl Default for MetricSettings {
    fn default() -> Self {
        MetricSettings {
            samples: 1000,
            seed: 0,
            align: Align::Icp,
            voxels: 64,
        }
    }
}

/// The scores of one case.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub pcd: f64,
    pub hausdorff: f64,
    pub iogt: f64,
    pub iou: f64,
}

impl Scores {
    /// What a case without a valid solid scores.
    pub fn failed() -> Scores {
        Scores {
            pcd: 3f64.sqrt(),
            hausdorff: 3f64.sqrt(),
            iogt: 0.0,
            iou: 0.0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MetricError {
    #[error("the {0} mesh has no triangle with an area")]
    Empty(&'static str),
    #[error("the {0} mesh has a point that is not finite")]
    NotFinite(&'static str),
}

type Point = [f64; 3];

/// A mesh in f64, ready to measure.
#[derive(Debug, Clone)]
struct Shape {
    vertices: Vec<Point>,
    triangles: Vec<[u32; 3]>,
}

impl Shape {
    fn of(mesh: &Mesh, which: &'static str) -> Result<Shape, MetricError> {
        let vertices: Vec<Point> = mesh.vertices.iter().map(|v| v.map(f64::from)).collect();
        if vertices.iter().flatten().any(|c| !c.is_finite()) {
            return Err(MetricError::NotFinite(which));
        }
        let shape = Shape {
            vertices,
            triangles: mesh.triangles.clone(),
        };
        if shape.areas().iter().all(|&a| a <= 0.0) {
            return Err(MetricError::Empty(which));
        }
        Ok(shape)
    }

    fn corners(&self, t: &[u32; 3]) -> [Point; 3] {
        t.map(|i| self.vertices[i as usize])
    }

    fn areas(&self) -> Vec<f64> {
        self.triangles
            .iter()
            .map(|t| {
                let [a, b, c] = self.corners(t);
                0.5 * norm(cross(sub(b, a), sub(c, a)))
            })
            .collect()
    }

    /// The bounding box of the vertices the triangles use.
    fn bbox(&self) -> (Point, Point) {
        let mut lo = [f64::INFINITY; 3];
        let mut hi = [f64::NEG_INFINITY; 3];
        for t in &self.triangles {
            for p in self.corners(t) {
                for k in 0..3 {
                    lo[k] = lo[k].min(p[k]);
                    hi[k] = hi[k].max(p[k]);
                }
            }
        }
        (lo, hi)
    }

    fn map(&self, f: impl Fn(Point) -> Point) -> Shape {
        Shape {
            vertices: self.vertices.iter().map(|&p| f(p)).collect(),
            triangles: self.triangles.clone(),
        }
    }

    /// Box centre to the origin, longest side to 1.
    fn normalised(&self) -> Shape {
        let (lo, hi) = self.bbox();
        let centre = [0, 1, 2].map(|k| (lo[k] + hi[k]) / 2.0);
        let longest = (0..3).map(|k| hi[k] - lo[k]).fold(0.0, f64::max);
        let scale = if longest > 0.0 { 1.0 / longest } else { 1.0 };
        self.map(|p| [0, 1, 2].map(|k| (p[k] - centre[k]) * scale))
    }
}

/// Scores `result` against `reference` (both in any units and placement).
pub fn score(
    result: &Mesh,
    reference: &Mesh,
    settings: &MetricSettings,
) -> Result<Scores, MetricError> {
    let reference = Shape::of(reference, "reference")?.normalised();
    let mut result = Shape::of(result, "result")?.normalised();
    let reference_points = sample_surface(&reference, settings.samples, settings.seed);
    let reference_tree: ImmutableKdTree<f64, 3> =
        ImmutableKdTree::new_from_slice(&reference_points);
    if settings.align == Align::Icp {
        let result_points = sample_surface(&result, settings.samples, settings.seed);
        let rotation = icp(&result_points, &reference_tree, &reference_points);
        result = result.map(|p| rotation.apply(p));
    }
    let result_points = sample_surface(&result, settings.samples, settings.seed);
    let result_tree: ImmutableKdTree<f64, 3> = ImmutableKdTree::new_from_slice(&result_points);
    let (to_reference_mean, to_reference_max) = directed(&result_points, &reference_tree);
    let (to_result_mean, to_result_max) = directed(&reference_points, &result_tree);
    Ok(Scores {
        pcd: (to_reference_mean + to_result_mean) / 2.0,
        hausdorff: to_reference_max.max(to_result_max),
        iogt: iogt(result.bbox(), reference.bbox()),
        iou: voxel_iou(&result, &reference, settings.voxels),
    })
}

/// Mean and largest distance from each point to the nearest point of `tree`.
fn directed(points: &[Point], tree: &ImmutableKdTree<f64, 3>) -> (f64, f64) {
    let mut sum = 0.0;
    let mut max: f64 = 0.0;
    for p in points {
        let d = tree.nearest_one::<SquaredEuclidean>(p).distance.sqrt();
        sum += d;
        max = max.max(d);
    }
    (sum / points.len().max(1) as f64, max)
}

/// `n` points on the surface, area weighted: a triangle is picked with
/// probability proportional to its area, then a uniform point in it.
fn sample_surface(shape: &Shape, n: usize, seed: u64) -> Vec<Point> {
    let areas = shape.areas();
    let mut cumulative = Vec::with_capacity(areas.len());
    let mut total = 0.0;
    for a in &areas {
        total += a.max(0.0);
        cumulative.push(total);
    }
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..n)
        .map(|_| {
            let pick = rng.f64() * total;
            let index = cumulative
                .partition_point(|&c| c <= pick)
                .min(areas.len() - 1);
            let [a, b, c] = shape.corners(&shape.triangles[index]);
            let (mut u, mut v) = (rng.f64(), rng.f64());
            if u + v > 1.0 {
                (u, v) = (1.0 - u, 1.0 - v);
            }
            [0, 1, 2].map(|k| a[k] + u * (b[k] - a[k]) + v * (c[k] - a[k]))
        })
        .collect()
}

/// A rigid motion: rotation then translation.
#[derive(Debug, Clone, Copy)]
struct Rigid {
    rotation: Matrix3<f64>,
    translation: Vector3<f64>,
}

impl Rigid {
    fn apply(&self, p: Point) -> Point {
        let q = self.rotation * Vector3::from(p) + self.translation;
        [q.x, q.y, q.z]
    }
}

const ICP_ROUNDS: usize = 30;

/// Aligns `points` to the cloud in `tree`: ICP from each of the 24 axis
/// rotations, keeping the motion with the smallest mean distance.
fn icp(points: &[Point], tree: &ImmutableKdTree<f64, 3>, targets: &[Point]) -> Rigid {
    let mut best: Option<(f64, Rigid)> = None;
    for start in axis_rotations() {
        let mut motion = Rigid {
            rotation: start,
            translation: Vector3::zeros(),
        };
        let mut error = f64::INFINITY;
        let mut achieved = motion;
        for _ in 0..ICP_ROUNDS {
            let moved: Vec<Point> = points.iter().map(|&p| motion.apply(p)).collect();
            let pairs: Vec<(Vector3<f64>, Vector3<f64>)> = moved
                .iter()
                .zip(points)
                .map(|(m, &p)| {
                    let nearest = tree.nearest_one::<SquaredEuclidean>(m);
                    (
                        Vector3::from(p),
                        Vector3::from(targets[nearest.item as usize]),
                    )
                })
                .collect();
            let new_error = moved
                .iter()
                .zip(&pairs)
                .map(|(m, (_, t))| (Vector3::from(*m) - t).norm())
                .sum::<f64>()
                / points.len().max(1) as f64;
            if new_error >= error - 1e-12 {
                break;
            }
            error = new_error;
            achieved = motion;
            if error == 0.0 {
                break;
            }
            motion = kabsch(&pairs);
        }
        if best.is_none_or(|(e, _)| error < e) {
            best = Some((error, achieved));
        }
    }
    best.map_or(
        Rigid {
            rotation: Matrix3::identity(),
            translation: Vector3::zeros(),
        },
        |(_, m)| m,
    )
}

/// The 24 proper rotations that map the coordinate axes onto themselves.
fn axis_rotations() -> Vec<Matrix3<f64>> {
    let mut out = Vec::new();
    let perms = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    for perm in perms {
        for signs in 0..8u32 {
            let mut m: Matrix3<f64> = Matrix3::zeros();
            for (row, &col) in perm.iter().enumerate() {
                m[(row, col)] = if signs >> row & 1 == 1 { -1.0 } else { 1.0 };
            }
            if (m.determinant() - 1.0).abs() < 1e-9 {
                out.push(m);
            }
        }
    }
    out
}

/// The rigid motion that best maps each pair's first point onto its second
/// (least squares, no reflection).
fn kabsch(pairs: &[(Vector3<f64>, Vector3<f64>)]) -> Rigid {
    let n = pairs.len().max(1) as f64;
    let ca = pairs.iter().map(|(a, _)| a).sum::<Vector3<f64>>() / n;
    let cb = pairs.iter().map(|(_, b)| b).sum::<Vector3<f64>>() / n;
    let h: Matrix3<f64> = pairs
        .iter()
        .map(|(a, b)| (a - ca) * (b - cb).transpose())
        .sum();
    let svd = h.svd(true, true);
    let (u, v_t) = (svd.u.expect("asked for"), svd.v_t.expect("asked for"));
    let mut d = Matrix3::identity();
    d[(2, 2)] = (v_t.transpose() * u.transpose()).determinant().signum();
    let rotation =
        Rotation3::from_matrix_unchecked(v_t.transpose() * d * u.transpose()).into_inner();
    Rigid {
        rotation,
        translation: cb - rotation * ca,
    }
}

/// Volume of the intersection of two boxes ÷ volume of the reference's.
fn iogt(result: (Point, Point), reference: (Point, Point)) -> f64 {
    let (rl, rh) = result;
    let (gl, gh) = reference;
    let overlap: f64 = (0..3)
        .map(|k| (rh[k].min(gh[k]) - rl[k].max(gl[k])).max(0.0))
        .product();
    let volume: f64 = (0..3).map(|k| gh[k] - gl[k]).product();
    if volume > 0.0 {
        overlap / volume
    } else {
        0.0
    }
}

/// Volumetric IoU on a grid of `n` cells along each side of the common box.
fn voxel_iou(a: &Shape, b: &Shape, n: usize) -> f64 {
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

fn sub(a: Point, b: Point) -> Point {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn cross(a: Point, b: Point) -> Point {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn norm(a: Point) -> f64 {
    (a[0] * a[0] + a[1] * a[1] + a[2] * a[2]).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An axis-aligned box from `lo` to `hi`, 12 outward-facing triangles.
    fn cuboid(lo: [f32; 3], hi: [f32; 3]) -> Mesh {
        let v = |x: usize, y: usize, z: usize| {
            [
                if x == 1 { hi[0] } else { lo[0] },
                if y == 1 { hi[1] } else { lo[1] },
                if z == 1 { hi[2] } else { lo[2] },
            ]
        };
        let vertices: Vec<[f32; 3]> = (0..8)
            .map(|i| v(i & 1, (i >> 1) & 1, (i >> 2) & 1))
            .collect();
        let quads = [
            [0, 2, 3, 1],
            [4, 5, 7, 6],
            [0, 1, 5, 4],
            [2, 6, 7, 3],
            [0, 4, 6, 2],
            [1, 3, 7, 5],
        ];
        let triangles = quads
            .iter()
            .flat_map(|q| [[q[0], q[1], q[2]], [q[0], q[2], q[3]]])
            .collect();
        Mesh {
            vertices,
            triangles,
            closed: true,
        }
    }

    fn no_align() -> MetricSettings {
        MetricSettings {
            align: Align::None,
            ..Default::default()
        }
    }

    #[test]
    fn a_cube_against_itself_scores_exactly_zero_and_one() {
        let cube = cuboid([0.0; 3], [10.0; 3]);
        for settings in [no_align(), MetricSettings::default()] {
            let s = score(&cube, &cube, &settings).unwrap();
            assert!(s.pcd < 1e-9 && s.hausdorff < 1e-9, "{s:?}");
            assert_eq!((s.iogt, s.iou), (1.0, 1.0), "{s:?}");
        }
        // Placement and size do not matter: each mesh is normalised on its own.
        let moved = cuboid([100.0, -5.0, 3.0], [103.0, -2.0, 6.0]);
        let s = score(&moved, &cube, &no_align()).unwrap();
        assert!(s.pcd < 1e-6 && s.iou == 1.0, "{s:?}");
    }

    #[test]
    fn a_box_stretched_by_a_known_factor() {
        // Normalised, a 2 × 1 × 1 box is 1 × ½ × ½ and the cube 1 × 1 × 1.
        let cube = cuboid([0.0; 3], [1.0; 3]);
        let long = cuboid([0.0; 3], [2.0, 1.0, 1.0]);
        let s = score(&long, &cube, &no_align()).unwrap();
        assert!((s.iogt - 0.25).abs() < 1e-9, "{s:?}");
        assert!((s.iou - 0.25).abs() < 0.02, "{s:?}");
        // The farthest point of the cube from the flat box is a corner at
        // (½, ½) across from the box's edge at (¼, ¼): √2·¼.
        assert!((s.hausdorff - 2f64.sqrt() / 4.0).abs() < 0.03, "{s:?}");
        assert!(s.pcd > 0.05 && s.pcd < s.hausdorff, "{s:?}");
    }

    #[test]
    fn iogt_of_two_offset_boxes() {
        let a = ([0.0, 0.0, 0.0], [1.0, 1.0, 1.0]);
        let b = ([0.5, 0.0, 0.0], [1.5, 1.0, 1.0]);
        assert!((iogt(b, a) - 0.5).abs() < 1e-12);
        let c = ([0.5, 0.5, 0.5], [1.5, 1.5, 1.5]);
        assert!((iogt(c, a) - 0.125).abs() < 1e-12);
        assert_eq!(iogt(([2.0; 3], [3.0; 3]), a), 0.0);
    }

    #[test]
    fn voxel_iou_of_nested_cubes_is_the_volume_ratio() {
        let outer = Shape::of(&cuboid([0.0; 3], [1.0; 3]), "a").unwrap();
        let inner = Shape::of(&cuboid([0.25; 3], [0.75; 3]), "b").unwrap();
        let iou = voxel_iou(&inner, &outer, 64);
        assert!((iou - 0.125).abs() < 0.01, "{iou}");
        assert!((voxel_iou(&outer, &outer, 32) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn sampling_is_deterministic_area_weighted_and_on_the_surface() {
        let shape = Shape::of(&cuboid([0.0; 3], [4.0, 1.0, 1.0]), "a").unwrap();
        let a = sample_surface(&shape, 2000, 7);
        assert_eq!(a, sample_surface(&shape, 2000, 7));
        assert_ne!(a, sample_surface(&shape, 2000, 8));
        let on_surface = |p: &Point| {
            let d = [
                p[0].min(4.0 - p[0]),
                p[1].min(1.0 - p[1]),
                p[2].min(1.0 - p[2]),
            ];
            d.iter().cloned().fold(f64::INFINITY, f64::min) < 1e-9
        };
        assert!(a.iter().all(on_surface));
        // The two 1 × 1 ends hold 2 of the 18 units of area.
        let ends = a
            .iter()
            .filter(|p| p[0] < 1e-9 || p[0] > 4.0 - 1e-9)
            .count();
        let share = ends as f64 / a.len() as f64;
        assert!((share - 2.0 / 18.0).abs() < 0.02, "{share}");
    }

    #[test]
    fn icp_undoes_a_quarter_turn() {
        let reference = cuboid([0.0; 3], [3.0, 2.0, 1.0]);
        // The same box modelled along other axes.
        let turned = cuboid([0.0; 3], [1.0, 3.0, 2.0]);
        let plain = score(&turned, &reference, &no_align()).unwrap();
        let aligned = score(&turned, &reference, &MetricSettings::default()).unwrap();
        // Two samplings of one surface lie about 0.02 apart on average (the
        // triangles differ, so the points do): that is the floor here.
        assert!(plain.pcd > 0.1 && plain.iou < 0.5, "{plain:?}");
        assert!(aligned.pcd < 0.035, "{aligned:?}");
        assert!(aligned.iou > 0.97 && aligned.iogt > 0.99, "{aligned:?}");
    }

    #[test]
    fn failure_scores_are_cadprompts() {
        let f = Scores::failed();
        assert_eq!((f.pcd, f.iogt, f.iou), (3f64.sqrt(), 0.0, 0.0));
    }
}
