//! Geometric scores of a result mesh against a reference mesh, under the
//! protocol a benchmark publishes (or cadloop's own), plus the errors that
//! normalising hides and the scores of shape-agnostic baselines.
//!
//! Stage in the flow: after a run, `bench` scores the chosen model's mesh
//! against the case's reference with [`score`], measures [`absolute`]
//! errors, and scores the [`baselines`] the same way.
//!
//! The protocols ([`Protocol`]; the README says where each comes from, and
//! [`Protocol::version`] which revision of each scored a bench folder):
//!
//! - **cadprompt** (CADPrompt's published evaluation): 1,000 evenly spaced
//!   points on each surface (Poisson disk, as Open3D draws them: see
//!   [`poisson`]), each cloud normalised on its own (its mean to the
//!   origin, its farthest point at distance 1), the result's cloud aligned
//!   to the reference's by ICP from the identity (at most 2,000 rounds,
//!   until the mean distance changes by less than 0.001); **pcd** = mean
//!   distance from each reference point to the nearest result point (one
//!   way, not squared); **hausdorff** = the larger directed maximum;
//!   **iogt** as the published code computes it (see [`published_iogt`]).
//!   A case without a model scores pcd 1.73, hausdorff 1.73, iogt 0, and
//!   counts in the medians.
//! - **text2cad** (the DeepCAD evaluation Text2CAD reuses): 2,000 points
//!   drawn uniformly by area on each surface, in the mesh's own frame (the
//!   frame DeepCAD's models and outputs share); a mesh with a coordinate
//!   beyond ±2 is divided by its largest coordinate, as DeepCAD's
//!   evaluation does to out-of-bounds outputs; no alignment; **cd** = (mean
//!   squared distance reference → result + mean squared distance result →
//!   reference) × 10³. A case without a valid model has no score: it is
//!   left out of the medians and counted in the invalidity ratio.
//! - **cadloop** (before the published protocols were pinned): each mesh
//!   normalised into the unit cube, 1,000 points, ICP from each of the 24
//!   axis rotations; **pcd** = the mean of the two directed mean distances,
//!   **hausdorff**, **iogt** = intersection of the aligned bounding boxes ÷
//!   the reference's box, **iou** on a voxel grid. A failure scores √3, √3, 0, 0.
//!
//! Points come from a generator seeded per mesh, so the same settings
//! always give the same scores. Under cadprompt and text2cad the result's
//! points and the reference's come from different seeds, as two independent
//! samplings do in the published code; under cadloop they share one.

mod icp;
mod poisson;
mod voxel;

use std::collections::BTreeMap;

use kiddo::{ImmutableKdTree, SquaredEuclidean};
use serde::{Deserialize, Serialize};

use crate::mesh::Mesh;

/// How results are measured: every setting at once, after a published procedure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Cadprompt,
    Text2cad,
    Cadloop,
}

impl Protocol {
    /// The word `--protocol` and the reports use.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Cadprompt => "cadprompt",
            Protocol::Text2cad => "text2cad",
            Protocol::Cadloop => "cadloop",
        }
    }

    /// The protocol's revision. Scores of different revisions do not
    /// compare: cadprompt 2 draws its points by Poisson disk, as the
    /// published code does (1 drew them uniformly); text2cad 2 keeps each
    /// mesh in its own frame with DeepCAD's out-of-bounds rule (1 moved
    /// each into the unit cube). A bench.json without one was scored by 1.
    pub fn version(self) -> u32 {
        match self {
            Protocol::Cadprompt | Protocol::Text2cad => 2,
            Protocol::Cadloop => 1,
        }
    }

    /// What changed in the protocol's current revision, for a report that
    /// rescores a folder scored by an earlier one.
    pub fn changes_since(self, version: u32) -> Option<&'static str> {
        if version >= self.version() {
            return None;
        }
        match self {
            Protocol::Cadprompt => Some("points are now drawn by Poisson disk, as the published code draws them, not uniformly"),
            Protocol::Text2cad => Some("meshes now keep their own frame, divided by their largest coordinate only beyond ±2 as DeepCAD's evaluation does, not moved into the unit cube"),
            // Still at its first revision.
            Protocol::Cadloop => None,
        }
    }

    /// The metrics the protocol reports, the headline first.
    pub fn metrics(self) -> &'static [Metric] {
        match self {
            Protocol::Cadprompt => &[Metric::Pcd, Metric::Hausdorff, Metric::Iogt],
            Protocol::Text2cad => &[Metric::Cd],
            Protocol::Cadloop => &[Metric::Pcd, Metric::Hausdorff, Metric::Iogt, Metric::Iou],
        }
    }

    /// Whether a case without a model counts in the medians (with the
    /// protocol's failure scores) or is left out of them.
    pub fn failures_count(self) -> bool {
        !matches!(self, Protocol::Text2cad)
    }

    /// What a case without a valid model scores (empty: it is left out).
    pub fn failed(self) -> Scores {
        let values: &[(Metric, f64)] = match self {
            Protocol::Cadprompt => &[
                (Metric::Pcd, 1.73),
                (Metric::Hausdorff, 1.73),
                (Metric::Iogt, 0.0),
            ],
            Protocol::Text2cad => &[],
            Protocol::Cadloop => &[
                (Metric::Pcd, SQRT_3),
                (Metric::Hausdorff, SQRT_3),
                (Metric::Iogt, 0.0),
                (Metric::Iou, 0.0),
            ],
        };
        Scores(values.iter().copied().collect())
    }
}

const SQRT_3: f64 = 1.732_050_807_568_877_2;

/// One score a protocol reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    Pcd,
    Hausdorff,
    Iogt,
    Iou,
    Cd,
}

impl Metric {
    /// Every metric, in the tables' order.
    pub const ALL: [Metric; 5] = [
        Metric::Pcd,
        Metric::Hausdorff,
        Metric::Iogt,
        Metric::Iou,
        Metric::Cd,
    ];

    /// The metric's key in JSON reports.
    pub fn key(self) -> &'static str {
        match self {
            Metric::Pcd => "pcd",
            Metric::Hausdorff => "hausdorff",
            Metric::Iogt => "iogt",
            Metric::Iou => "iou",
            Metric::Cd => "cd",
        }
    }

    /// The column heading.
    pub fn label(self) -> &'static str {
        match self {
            Metric::Pcd => "PCD",
            Metric::Hausdorff => "Hausdorff",
            Metric::Iogt => "IoGT",
            Metric::Iou => "IoU",
            Metric::Cd => "CD ×10³",
        }
    }

    /// Whether a smaller value is a better score.
    pub fn lower_is_better(self) -> bool {
        matches!(self, Metric::Pcd | Metric::Hausdorff | Metric::Cd)
    }
}

/// How the result is aligned to the reference before measuring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Align {
    None,
    Icp,
}

/// How points are drawn on a surface.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sampling {
    /// Independent points, uniform by area (what cadloop drew before
    /// version 2 of cadprompt, so what a settings record without the field
    /// means).
    #[default]
    Uniform,
    /// Evenly spaced points: Poisson disk by weighted sample elimination.
    Poisson,
}

impl Sampling {
    /// The word `--sampling` and the reports use.
    pub fn as_str(self) -> &'static str {
        match self {
            Sampling::Uniform => "uniform",
            Sampling::Poisson => "poisson",
        }
    }
}

/// How to measure.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MetricSettings {
    pub protocol: Protocol,
    pub samples: usize,
    pub seed: u64,
    /// How the points are drawn.
    #[serde(default)]
    pub sampling: Sampling,
    pub align: Align,
    /// Voxel cells along each side for the IoU (cadloop's protocol).
    pub voxels: usize,
}

impl MetricSettings {
    /// The protocol's own settings.
    pub fn of(protocol: Protocol) -> MetricSettings {
        let (samples, sampling, align) = match protocol {
            Protocol::Cadprompt => (1000, Sampling::Poisson, Align::Icp),
            Protocol::Text2cad => (2000, Sampling::Uniform, Align::None),
            Protocol::Cadloop => (1000, Sampling::Uniform, Align::Icp),
        };
        MetricSettings {
            protocol,
            samples,
            seed: 0,
            sampling,
            align,
            voxels: 64,
        }
    }

    /// Whether a setting differs from the protocol's own.
    pub fn modified(&self) -> bool {
        let own = MetricSettings::of(self.protocol);
        (self.samples, self.sampling, self.align) != (own.samples, own.sampling, own.align)
            || (self.protocol == Protocol::Cadloop && self.voxels != own.voxels)
    }

    /// The seed of the result's points (the reference's is `seed`).
    fn result_seed(&self) -> u64 {
        match self.protocol {
            Protocol::Cadloop => self.seed,
            _ => self.seed ^ RESULT_STREAM,
        }
    }

    /// `samples` points on `shape` by the settings' sampling.
    fn draw(&self, shape: &Shape, seed: u64) -> Vec<Point> {
        match self.sampling {
            Sampling::Uniform => sample_surface(shape, self.samples, seed),
            Sampling::Poisson => poisson::poisson_disk(shape, self.samples, seed),
        }
    }
}

/// Sets the result's sampling apart from the reference's.
const RESULT_STREAM: u64 = 0x9e37_79b9_7f4a_7c15;

/// A case's scores by metric.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Scores(pub BTreeMap<Metric, f64>);

impl Scores {
    /// The score for `metric`, when it was computed.
    pub fn get(&self, metric: Metric) -> Option<f64> {
        self.0.get(&metric).copied()
    }
}

/// A mesh could not be scored: no triangle with an area, or a point that is
/// not finite.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MetricError {
    #[error("the {0} mesh has no triangle with an area")]
    Empty(&'static str),
    #[error("the {0} mesh has a point that is not finite")]
    NotFinite(&'static str),
}

pub(crate) type Point = [f64; 3];

/// A mesh in f64, ready to measure.
#[derive(Debug, Clone)]
pub(crate) struct Shape {
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

    pub(crate) fn corners(&self, t: &[u32; 3]) -> [Point; 3] {
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
    pub(crate) fn bbox(&self) -> (Point, Point) {
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
    Reference::new(reference, settings)?.score(result)
}

/// A reference made ready once for every score against it: its surface,
/// and its points drawn and normalised as the protocol does.
#[derive(Debug, Clone)]
pub struct Reference {
    shape: Shape,
    settings: MetricSettings,
    truth: Cloud,
}

/// Points with their k-d tree, built once for every search against them.
#[derive(Debug, Clone)]
struct Cloud {
    points: Vec<Point>,
    tree: ImmutableKdTree<f64, 3>,
}

impl Cloud {
    fn new(points: Vec<Point>) -> Cloud {
        let tree = ImmutableKdTree::new_from_slice(&points);
        Cloud { points, tree }
    }
}

impl Reference {
    pub fn new(mesh: &Mesh, settings: &MetricSettings) -> Result<Reference, MetricError> {
        let shape = Shape::of(mesh, "reference")?;
        let truth = match settings.protocol {
            Protocol::Cadprompt => unit_sphere(settings.draw(&shape, settings.seed)),
            Protocol::Text2cad => deepcad_frame(settings.draw(&shape, settings.seed)),
            Protocol::Cadloop => settings.draw(&shape.normalised(), settings.seed),
        };
        Ok(Reference {
            shape,
            settings: *settings,
            truth: Cloud::new(truth),
        })
    }

    /// Scores `result` against this reference.
    pub fn score(&self, result: &Mesh) -> Result<Scores, MetricError> {
        let result = Shape::of(result, "result")?;
        Ok(self.score_shape(&result, self.settings.result_seed()))
    }

    fn score_shape(&self, result: &Shape, result_seed: u64) -> Scores {
        let s = &self.settings;
        match s.protocol {
            Protocol::Cadprompt => cadprompt(result, &self.truth, s, result_seed),
            Protocol::Text2cad => text2cad(result, &self.truth, s, result_seed),
            Protocol::Cadloop => cadloop(result, &self.shape, &self.truth, s, result_seed),
        }
    }

    /// What the shape-agnostic answers score against this reference.
    pub fn baselines(&self) -> Result<Baselines, MetricError> {
        let (lo, hi) = self.shape.bbox();
        let boxed = Mesh::cuboid(lo.map(|v| v as f32), hi.map(|v| v as f32));
        Ok(Baselines {
            cube: self.score(&Mesh::cuboid([0.0; 3], [1.0; 3]))?,
            bbox: self.score(&boxed)?,
            noise: self.score_shape(
                &self.shape,
                self.settings.result_seed().wrapping_add(NOISE_STREAM),
            ),
        })
    }
}

/// The cadprompt protocol (module docs); `truth` is the reference's cloud.
fn cadprompt(result: &Shape, truth: &Cloud, s: &MetricSettings, result_seed: u64) -> Scores {
    let mut made = unit_sphere(s.draw(result, result_seed));
    if s.align == Align::Icp {
        made = icp::icp_from_identity(&made, &truth.tree, &truth.points, 2000, 0.001);
    }
    cadprompt_points(truth, &made)
}

/// CADPrompt's scores of two normalised, aligned point clouds.
fn cadprompt_points(truth: &Cloud, made: &[Point]) -> Scores {
    let made_tree: ImmutableKdTree<f64, 3> = ImmutableKdTree::new_from_slice(made);
    let (truth_to_made, truth_max) = directed(&truth.points, &made_tree);
    let (_, made_max) = directed(made, &truth.tree);
    Scores(BTreeMap::from([
        (Metric::Pcd, truth_to_made),
        (Metric::Hausdorff, truth_max.max(made_max)),
        (Metric::Iogt, published_iogt(&truth.points, made)),
    ]))
}

/// The text2cad protocol (module docs).
fn text2cad(result: &Shape, truth: &Cloud, s: &MetricSettings, result_seed: u64) -> Scores {
    let mut made = deepcad_frame(s.draw(result, result_seed));
    if s.align == Align::Icp {
        let motion = icp::icp(&made, &truth.tree, &truth.points);
        made = made.into_iter().map(|p| motion.apply(p)).collect();
    }
    Scores(BTreeMap::from([(Metric::Cd, chamfer(truth, &made) * 1e3)]))
}

/// DeepCAD's Chamfer distance: the two directed mean squared distances, summed.
fn chamfer(truth: &Cloud, made: &[Point]) -> f64 {
    let made_tree: ImmutableKdTree<f64, 3> = ImmutableKdTree::new_from_slice(made);
    mean_squared(&truth.points, &made_tree) + mean_squared(made, &truth.tree)
}

/// The cadloop protocol (module docs); `truth` is drawn on the normalised
/// reference.
fn cadloop(
    result: &Shape,
    reference: &Shape,
    truth: &Cloud,
    s: &MetricSettings,
    result_seed: u64,
) -> Scores {
    let reference = reference.normalised();
    let mut result = result.normalised();
    if s.align == Align::Icp {
        let result_points = s.draw(&result, result_seed);
        let motion = icp::icp(&result_points, &truth.tree, &truth.points);
        result = result.map(|p| motion.apply(p));
    }
    let result_points = s.draw(&result, result_seed);
    let result_tree: ImmutableKdTree<f64, 3> = ImmutableKdTree::new_from_slice(&result_points);
    let (to_reference_mean, to_reference_max) = directed(&result_points, &truth.tree);
    let (to_result_mean, to_result_max) = directed(&truth.points, &result_tree);
    Scores(BTreeMap::from([
        (Metric::Pcd, (to_reference_mean + to_result_mean) / 2.0),
        (Metric::Hausdorff, to_reference_max.max(to_result_max)),
        (Metric::Iogt, iogt(result.bbox(), reference.bbox())),
        (Metric::Iou, voxel::voxel_iou(&result, &reference, s.voxels)),
    ]))
}

/// DeepCAD's evaluation keeps points in their frame (its models lie within
/// ±0.75) unless a coordinate lies beyond ±2; then every coordinate is
/// divided by the largest in size.
fn deepcad_frame(mut points: Vec<Point>) -> Vec<Point> {
    const BOUND: f64 = 2.0;
    let largest = points.iter().flatten().fold(0.0f64, |m, c| m.max(c.abs()));
    if largest > BOUND {
        for p in &mut points {
            *p = p.map(|c| c / largest);
        }
    }
    points
}

/// Points moved so their mean is the origin and the farthest lies at distance 1.
fn unit_sphere(mut points: Vec<Point>) -> Vec<Point> {
    let n = points.len().max(1) as f64;
    let centre = [0, 1, 2].map(|k| points.iter().map(|p| p[k]).sum::<f64>() / n);
    let far = points
        .iter()
        .map(|p| norm(sub(*p, centre)))
        .fold(0.0, f64::max);
    let scale = if far > 0.0 { 1.0 / far } else { 1.0 };
    for p in &mut points {
        *p = [0, 1, 2].map(|k| (p[k] - centre[k]) * scale);
    }
    points
}

/// "IoGT" as CADPrompt's published code computes it: the reference's and
/// the result's normalised points are paired by their order, each
/// coordinate is marked when it exceeds −0.6, and the share of the
/// reference's marks that the result's paired coordinate also carries is
/// the score. It is not a ratio of volumes or boxes, whatever its name;
/// cadloop reproduces it so its numbers sit beside the published ones.
fn published_iogt(truth: &[Point], made: &[Point]) -> f64 {
    const THRESHOLD: f64 = -0.6;
    let (mut marked, mut both) = (0usize, 0usize);
    for (t, m) in truth.iter().zip(made) {
        for k in 0..3 {
            if t[k] > THRESHOLD {
                marked += 1;
                both += usize::from(m[k] > THRESHOLD);
            }
        }
    }
    if marked == 0 {
        0.0
    } else {
        both as f64 / marked as f64
    }
}

/// What normalising every mesh on its own hides: the result's bounding-box
/// sizes against the reference's (each sorted, largest first, so a part
/// modelled about other axes still compares; in the reference's units), and
/// the ratio of their volumes (when both meshes are watertight).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Absolute {
    /// Result minus reference, largest side first.
    pub size_error: [f64; 3],
    /// Result ÷ reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_ratio: Option<f64>,
}

/// Sizes and volumes of `result` against `reference`, before any alignment.
pub fn absolute(result: &Mesh, reference: &Mesh) -> Result<Absolute, MetricError> {
    let sizes = |mesh: &Mesh, which| -> Result<[f64; 3], MetricError> {
        let (lo, hi) = Shape::of(mesh, which)?.bbox();
        let mut size = [0, 1, 2].map(|k| hi[k] - lo[k]);
        size.sort_by(|a, b| b.total_cmp(a));
        Ok(size)
    };
    let (made, truth) = (sizes(result, "result")?, sizes(reference, "reference")?);
    let volume = |mesh: &Mesh| mesh.is_watertight().then(|| mesh.signed_volume().abs());
    let volume_ratio = match (volume(result), volume(reference)) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    Ok(Absolute {
        size_error: [0, 1, 2].map(|k| made[k] - truth[k]),
        volume_ratio,
    })
}

/// What shape-agnostic answers score against a reference, under the same
/// protocol: a fixed cube, the box of the reference's own bounding box (a
/// system that got only the size right), and the reference itself sampled
/// with another seed (the noise floor: the best score a perfect result can
/// expect).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baselines {
    pub cube: Scores,
    pub bbox: Scores,
    pub noise: Scores,
}

/// The names of the baselines, in the order tables show them.
pub const BASELINES: [(&str, &str); 3] = [
    ("cube", "a fixed cube"),
    ("bbox", "the reference's bounding box"),
    ("noise", "the reference itself, another seed"),
];

impl Baselines {
    /// The baseline named `name` ("cube", "bbox", "noise").
    pub fn get(&self, name: &str) -> Option<&Scores> {
        match name {
            "cube" => Some(&self.cube),
            "bbox" => Some(&self.bbox),
            "noise" => Some(&self.noise),
            _ => None,
        }
    }
}

/// The scores of the baselines against `reference`, so a result's scores have a scale.
pub fn baselines(reference: &Mesh, settings: &MetricSettings) -> Result<Baselines, MetricError> {
    Reference::new(reference, settings)?.baselines()
}

/// Sets the noise floor's second sampling apart from both others.
const NOISE_STREAM: u64 = 0x5851_f42d_4c95_7f2d;

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

/// Mean squared distance from each point to the nearest point of `tree`.
fn mean_squared(points: &[Point], tree: &ImmutableKdTree<f64, 3>) -> f64 {
    let sum: f64 = points
        .iter()
        .map(|p| tree.nearest_one::<SquaredEuclidean>(p).distance)
        .sum();
    sum / points.len().max(1) as f64
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

pub(crate) fn sub(a: Point, b: Point) -> Point {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

pub(crate) fn cross(a: Point, b: Point) -> Point {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

pub(crate) fn norm(a: Point) -> f64 {
    (a[0] * a[0] + a[1] * a[1] + a[2] * a[2]).sqrt()
}

#[cfg(test)]
mod tests;
