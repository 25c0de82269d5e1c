//! The renderer: seven orthographic views of a mesh and a contact sheet,
//! headless, on the CPU, deterministic (same input, byte-identical PNGs).
//!
//! Stage in the flow: the executor's mesh comes in; the views go to the
//! captioner and, with the sheet, into the run directory for people.
//!
//! Here: cameras, the z-buffered rasteriser, edge lines and shading, one
//! algorithm whose parts share their buffers and conventions and read best
//! side by side. `sheet`: the contact sheet, its labels' font, and the PNG
//! files. Mesh files (STL) are read in [`crate::mesh`].
//!
//! # Camera conventions (FreeCAD's standard views)
//! Each view is a direction the camera looks along and the world axis that is
//! "up" on screen; screen-right is `look × up`.
//!
//! | view   | looks along   | up  | right on screen |
//! |--------|---------------|-----|-----------------|
//! | front  | +Y            | +Z  | +X              |
//! | back   | −Y            | +Z  | −X              |
//! | left   | +X            | +Z  | −Y              |
//! | right  | −X            | +Z  | +Y              |
//! | top    | −Z            | +Y  | +X              |
//! | bottom | +Z            | −Y  | +X              |
//! | iso    | (−1, +1, −1)  | +Z  | (+1, +1, 0)/√2  |
//!
//! So back is front mirrored left-right, left is right mirrored, bottom is top
//! mirrored top-to-bottom, and iso (FreeCAD's isometric) shows the front,
//! right and top faces.
//!
//! # How a view is drawn
//! Vertices are projected and the view is fitted to the image with a margin.
//! Triangles are rasterised into a depth buffer and a triangle-id buffer at
//! `supersample`× the output size. Each sample is then shaded (flat, two
//! lights) or, where it sits on a feature line, drawn dark: next to the
//! background (silhouette), at a depth jump (an occluding edge), or between
//! faces meeting at more than [`CREASE_DEGREES`] (box edges, hole rims, steps;
//! not the facets of a tessellated curve). Samples are box-filtered down to
//! the output size with integer sums. Views render in parallel; buffers are
//! allocated once per view.

use std::path::PathBuf;

use image::RgbImage;
use rayon::prelude::*;

use crate::mesh::Mesh;

mod sheet;

pub use sheet::{contact_sheet, load_font, write_png, write_views};

/// Faces meeting at more than this angle get a line between them.
pub const CREASE_DEGREES: f32 = 35.0;
/// A depth step of more than this many samples' width is an occluding edge.
const DEPTH_JUMP_SAMPLES: f32 = 4.0;
const BACKGROUND: [u8; 3] = [255, 255, 255];
const LINE: [u8; 3] = [40, 40, 48];
const BASE: [f32; 3] = [150.0, 172.0, 205.0];
/// The mesh's marked polylines (a refused shape's free edges): a red that
/// neither the blue-grey shading nor the dark lines come near.
pub const MARK: [u8; 3] = [225, 30, 20];
/// Marked polylines are this many pixels wide.
const MARK_WIDTH_PX: f32 = 3.0;
/// Output images are at most this many pixels on a side.
pub const MAX_SIZE: u32 = 2048;
/// The folder [`write_views`] puts the seven views in, and the contact sheet beside it.
pub const VIEWS_DIR: &str = "views";
/// The contact sheet of the seven views, in a run folder and an attempt's.
pub const SHEET_FILE: &str = "sheet.png";
/// The sampled image (size × supersample) is at most this many samples on a side,
/// which bounds a view's buffers to 128 MiB.
pub const MAX_SAMPLED_SIDE: u32 = 4096;

/// The seven standard views, in the order they are written and tiled; in
/// records by their file stems (`"front"`, …, `"iso"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum View {
    Front,
    Back,
    Left,
    Right,
    Top,
    Bottom,
    Iso,
}

impl std::fmt::Display for View {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

impl View {
    /// The seven views, in the contact sheet's order.
    pub const ALL: [View; 7] = [
        View::Front,
        View::Back,
        View::Left,
        View::Right,
        View::Top,
        View::Bottom,
        View::Iso,
    ];

    /// The file stem: `front`, …, `iso`.
    pub fn name(self) -> &'static str {
        match self {
            View::Front => "front",
            View::Back => "back",
            View::Left => "left",
            View::Right => "right",
            View::Top => "top",
            View::Bottom => "bottom",
            View::Iso => "iso",
        }
    }

    /// The label on the contact sheet.
    pub fn title(self) -> &'static str {
        match self {
            View::Front => "Front",
            View::Back => "Back",
            View::Left => "Left",
            View::Right => "Right",
            View::Top => "Top",
            View::Bottom => "Bottom",
            View::Iso => "Isometric",
        }
    }

    /// (look direction, screen up, screen right), unit vectors.
    pub fn camera(self) -> Camera {
        let (look, up_hint): ([f32; 3], [f32; 3]) = match self {
            View::Front => ([0., 1., 0.], [0., 0., 1.]),
            View::Back => ([0., -1., 0.], [0., 0., 1.]),
            View::Left => ([1., 0., 0.], [0., 0., 1.]),
            View::Right => ([-1., 0., 0.], [0., 0., 1.]),
            View::Top => ([0., 0., -1.], [0., 1., 0.]),
            View::Bottom => ([0., 0., 1.], [0., -1., 0.]),
            View::Iso => ([-1., 1., -1.], [0., 0., 1.]),
        };
        let look = normalize(look);
        let right = normalize(cross(look, up_hint));
        let up = cross(right, look);
        Camera { look, up, right }
    }
}

/// An orthographic camera's axes in world coordinates.
#[derive(Debug, Clone, Copy)]
pub struct Camera {
    pub look: [f32; 3],
    pub up: [f32; 3],
    pub right: [f32; 3],
}

/// How views are drawn.
#[derive(Debug, Clone)]
pub struct RenderSettings {
    /// Width and height of each view in pixels (384 is BLIP's input size).
    pub size: u32,
    /// Empty border on each side, as a share of the size.
    pub margin: f32,
    /// Samples per pixel along each axis (2 = 4 samples per pixel).
    pub supersample: u32,
}

impl Default for RenderSettings {
    fn default() -> Self {
        RenderSettings {
            size: 384,
            margin: 0.06,
            supersample: 2,
        }
    }
}

/// A mesh could not be rendered, or its images written.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("the mesh is empty: it has no triangles")]
    Empty,
    #[error("vertex {index} has a coordinate that is not a finite number ({value:?})")]
    NotFinite { index: usize, value: [f32; 3] },
    #[error("triangle {triangle} refers to vertex {index}, but there are only {vertices}")]
    BadIndex {
        triangle: usize,
        index: u32,
        vertices: usize,
    },
    #[error("none of the {0} triangles has an area: there is nothing to draw")]
    AllDegenerate(usize),
    #[error("image size {0} is out of range; use 16 to {MAX_SIZE}")]
    Size(u32),
    #[error("supersampling {0} is out of range for this size; use 1 to 4, with size × supersampling ≤ {MAX_SAMPLED_SIDE}")]
    Supersample(u32),
    #[error("no font for the sheet's labels: install Debian's fonts-dejavu-core or set CADLOOP_FONT to a .ttf file")]
    NoFont,
    #[error("the font {} cannot be used", path.display())]
    BadFont { path: PathBuf },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode {}", path.display())]
    Encode {
        path: PathBuf,
        #[source]
        source: image::ImageError,
    },
}

/// Seven rendered views, in [`View::ALL`] order.
#[derive(Debug, Clone)]
pub struct Views {
    pub images: Vec<(View, RgbImage)>,
    /// The mesh had marked polylines, drawn in [`MARK`]'s colour (the
    /// contact sheet then says what they are).
    pub marked: bool,
}

impl Views {
    /// The image of `view`.
    pub fn get(&self, view: View) -> &RgbImage {
        &self
            .images
            .iter()
            .find(|(v, _)| *v == view)
            .expect("all views")
            .1
    }
}

/// Renders the seven views of `mesh`.
pub fn render(mesh: &Mesh, settings: &RenderSettings) -> Result<Views, RenderError> {
    if !(16..=MAX_SIZE).contains(&settings.size) {
        return Err(RenderError::Size(settings.size));
    }
    if !(1..=4).contains(&settings.supersample)
        || settings.size * settings.supersample > MAX_SAMPLED_SIDE
    {
        return Err(RenderError::Supersample(settings.supersample));
    }
    // A result of named parts is drawn part by part, each in its colour.
    let (joined, colors);
    let prepared = if mesh.parts.is_empty() {
        Prepared::new(mesh, Vec::new())?
    } else {
        (joined, colors) = join_parts(mesh);
        Prepared::new(&joined, colors)?
    };
    let images = View::ALL
        .par_iter()
        .map(|&view| (view, render_view(&prepared, view, settings)))
        .collect();
    Ok(Views {
        images,
        marked: mesh.marked.iter().any(|line| line.len() >= 2),
    })
}

/// The parts of `mesh` as one mesh, and each triangle's part index and colour.
fn join_parts(mesh: &Mesh) -> (Mesh, Vec<(u32, [f32; 3])>) {
    let mut joined = Mesh {
        closed: mesh.parts.iter().all(|p| p.mesh.closed),
        marked: mesh.marked.clone(),
        ..Mesh::default()
    };
    let mut colors = Vec::new();
    for (index, part) in mesh.parts.iter().enumerate() {
        let base = joined.vertices.len() as u32;
        joined.vertices.extend_from_slice(&part.mesh.vertices);
        joined
            .triangles
            .extend(part.mesh.triangles.iter().map(|t| t.map(|i| i + base)));
        let color = part.color.map(f32::from);
        colors.extend(std::iter::repeat_n(
            (index as u32, color),
            part.mesh.triangles.len(),
        ));
    }
    (joined, colors)
}

/// A checked mesh with unit face normals (zero for a triangle without area,
/// which is never drawn), and for a mesh of parts each triangle's part and
/// colour (empty: one part, in [`BASE`]).
struct Prepared<'a> {
    mesh: &'a Mesh,
    normals: Vec<[f32; 3]>,
    used: Vec<bool>,
    colors: Vec<(u32, [f32; 3])>,
}

impl<'a> Prepared<'a> {
    fn new(mesh: &'a Mesh, colors: Vec<(u32, [f32; 3])>) -> Result<Prepared<'a>, RenderError> {
        if mesh.triangles.is_empty() {
            return Err(RenderError::Empty);
        }
        if let Some((index, value)) = mesh
            .vertices
            .iter()
            .enumerate()
            .find(|(_, v)| !v.iter().all(|c| c.is_finite()))
        {
            return Err(RenderError::NotFinite {
                index,
                value: *value,
            });
        }
        let mut used = vec![false; mesh.vertices.len()];
        let mut normals = Vec::with_capacity(mesh.triangles.len());
        for (triangle, tri) in mesh.triangles.iter().enumerate() {
            for &index in tri {
                match used.get_mut(index as usize) {
                    Some(flag) => *flag = true,
                    None => {
                        return Err(RenderError::BadIndex {
                            triangle,
                            index,
                            vertices: mesh.vertices.len(),
                        })
                    }
                }
            }
            let [a, b, c] = tri.map(|i| mesh.vertices[i as usize]);
            let n = cross(sub(b, a), sub(c, a));
            let len = dot(n, n).sqrt();
            normals.push(if len > 0.0 && len.is_finite() {
                scale(n, 1.0 / len)
            } else {
                [0.0; 3]
            });
        }
        if normals.iter().all(|n| *n == [0.0; 3]) {
            return Err(RenderError::AllDegenerate(normals.len()));
        }
        Ok(Prepared {
            mesh,
            normals,
            used,
            colors,
        })
    }
}

/// Per-view buffers at the sampled resolution.
struct Samples {
    side: usize,
    depth: Vec<f32>,
    triangle: Vec<u32>,
}

const NONE: u32 = u32::MAX;

fn render_view(prepared: &Prepared<'_>, view: View, settings: &RenderSettings) -> RgbImage {
    let camera = view.camera();
    let ss = settings.supersample as usize;
    let side = settings.size as usize * ss;
    let mesh = prepared.mesh;

    // Project: x right, y up, z along the look direction (larger is farther).
    let projected: Vec<[f32; 3]> = mesh
        .vertices
        .iter()
        .map(|&v| [dot(v, camera.right), dot(v, camera.up), dot(v, camera.look)])
        .collect();
    let (mut lo, mut hi) = ([f32::INFINITY; 2], [f32::NEG_INFINITY; 2]);
    for (p, _) in projected.iter().zip(&prepared.used).filter(|(_, &u)| u) {
        for k in 0..2 {
            lo[k] = lo[k].min(p[k]);
            hi[k] = hi[k].max(p[k]);
        }
    }
    let extent = (hi[0] - lo[0]).max(hi[1] - lo[1]);
    let usable = side as f32 * (1.0 - 2.0 * settings.margin);
    let pixels_per_unit = if extent > 0.0 { usable / extent } else { 1.0 };
    let centre = [(lo[0] + hi[0]) / 2.0, (lo[1] + hi[1]) / 2.0];
    let half = side as f32 / 2.0;
    // Used vertices lie inside the image (non-negative), where adding ½ and
    // truncating rounds; `f32::round` is a slow library call on baseline x86-64.
    let to_fixed = |v: f32| (v * ONE as f32 + 0.5) as i64;
    let screen: Vec<ScreenVertex> = projected
        .iter()
        .map(|p| ScreenVertex {
            x: to_fixed((p[0] - centre[0]) * pixels_per_unit + half),
            y: to_fixed(half - (p[1] - centre[1]) * pixels_per_unit),
            z: p[2],
        })
        .collect();

    let mut samples = Samples {
        side,
        depth: vec![f32::INFINITY; side * side],
        triangle: vec![NONE; side * side],
    };
    for (t, tri) in mesh.triangles.iter().enumerate() {
        let normal = prepared.normals[t];
        if normal == [0.0; 3] {
            continue;
        }
        // A closed solid's faces turned away from the camera are always hidden.
        if mesh.closed && dot(normal, camera.look) > 0.0 {
            continue;
        }
        rasterize(&mut samples, tri.map(|i| screen[i as usize]), t as u32);
    }

    let lights = Lights::new(&camera);
    let shades: Vec<[u8; 3]> = prepared
        .normals
        .iter()
        .enumerate()
        .map(|(t, &n)| lights.shade(n, prepared.colors.get(t).map_or(BASE, |c| c.1)))
        .collect();
    let depth_jump = DEPTH_JUMP_SAMPLES / pixels_per_unit;
    let crease_cos = CREASE_DEGREES.to_radians().cos();
    let lines = feature_lines(&samples, |i, j, t, u| {
        if t == NONE || u == NONE {
            return true;
        }
        if (samples.depth[i] - samples.depth[j]).abs() > depth_jump {
            return true;
        }
        // Where one part meets another.
        if let (Some(a), Some(b)) = (
            prepared.colors.get(t as usize),
            prepared.colors.get(u as usize),
        ) {
            if a.0 != b.0 {
                return true;
            }
        }
        dot(prepared.normals[t as usize], prepared.normals[u as usize]) < crease_cos
    });
    // Marked polylines are drawn over everything, hidden or not: a gap
    // behind the part is still a gap.
    let mut marks = Vec::new();
    if !mesh.marked.is_empty() {
        marks = vec![false; side * side];
        let radius = MARK_WIDTH_PX * ss as f32 / 2.0;
        let to_screen = |v: [f32; 3]| {
            [
                (dot(v, camera.right) - centre[0]) * pixels_per_unit + half,
                half - (dot(v, camera.up) - centre[1]) * pixels_per_unit,
            ]
        };
        for line in &mesh.marked {
            for pair in line.windows(2) {
                stroke(
                    &mut marks,
                    side,
                    to_screen(pair[0]),
                    to_screen(pair[1]),
                    radius,
                );
            }
        }
    }
    downsample(settings.size, ss, &samples, &lines, &marks, &shades)
}

/// Sets the samples within `radius` of the segment a→b (in samples).
fn stroke(marks: &mut [bool], side: usize, a: [f32; 2], b: [f32; 2], radius: f32) {
    if !(a.iter().chain(&b).all(|c| c.is_finite())) {
        return;
    }
    let limit = side as f32 - 1.0;
    let x0 = (a[0].min(b[0]) - radius).floor().clamp(0.0, limit) as usize;
    let x1 = (a[0].max(b[0]) + radius).ceil().clamp(0.0, limit) as usize;
    let y0 = (a[1].min(b[1]) - radius).floor().clamp(0.0, limit) as usize;
    let y1 = (a[1].max(b[1]) + radius).ceil().clamp(0.0, limit) as usize;
    let d = [b[0] - a[0], b[1] - a[1]];
    let length2 = d[0] * d[0] + d[1] * d[1];
    for y in y0..=y1 {
        for x in x0..=x1 {
            // The sample's centre, and its distance to the nearest point of the segment.
            let p = [x as f32 + 0.5 - a[0], y as f32 + 0.5 - a[1]];
            let t = if length2 > 0.0 {
                ((p[0] * d[0] + p[1] * d[1]) / length2).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let (dx, dy) = (p[0] - t * d[0], p[1] - t * d[1]);
            if dx * dx + dy * dy <= radius * radius {
                marks[y * side + x] = true;
            }
        }
    }
}

/// Sub-sample precision of the rasteriser: vertices snap to 1/16 of a sample.
const SUBSAMPLE_BITS: u32 = 4;
const ONE: i64 = 1 << SUBSAMPLE_BITS;

/// A vertex on screen: fixed-point x and y (in 1/16 samples), depth.
#[derive(Clone, Copy)]
struct ScreenVertex {
    x: i64,
    y: i64,
    z: f32,
}

/// Twice the signed area of (a, b, p), exact in fixed point.
fn orient(a: ScreenVertex, b: ScreenVertex, px: i64, py: i64) -> i64 {
    (b.x - a.x) * (py - a.y) - (b.y - a.y) * (px - a.x)
}

/// Whether samples exactly on the edge a→b belong to this triangle. Two
/// triangles sharing an edge walk it in opposite directions, so exactly one
/// of them owns it: no sample is drawn twice and none falls through a crack.
fn owns_edge(a: ScreenVertex, b: ScreenVertex) -> bool {
    let (dx, dy) = (b.x - a.x, b.y - a.y);
    dy > 0 || (dy == 0 && dx < 0)
}

/// Fills the samples whose centres a triangle covers; nearest wins.
/// Edge functions are integers stepped exactly across the bounding box.
fn rasterize(samples: &mut Samples, [a, b, c]: [ScreenVertex; 3], id: u32) {
    let area = orient(a, b, c.x, c.y);
    if area == 0 {
        return;
    }
    // Either winding: the mesh may be seen from inside or be open.
    let (b, c, area) = if area < 0 {
        (c, b, -area)
    } else {
        (b, c, area)
    };
    let last = samples.side as i64 - 1;
    let x0 = (a.x.min(b.x).min(c.x) >> SUBSAMPLE_BITS).max(0);
    let x1 = (a.x.max(b.x).max(c.x) >> SUBSAMPLE_BITS).min(last);
    let y0 = (a.y.min(b.y).min(c.y) >> SUBSAMPLE_BITS).max(0);
    let y1 = (a.y.max(b.y).max(c.y) >> SUBSAMPLE_BITS).min(last);
    if x0 > x1 || y0 > y1 {
        return;
    }
    // Sample (x, y) has its centre at ((x + ½)·ONE, (y + ½)·ONE).
    let (px, py) = (x0 * ONE + ONE / 2, y0 * ONE + ONE / 2);
    let edges = [(b, c), (c, a), (a, b)];
    let bias = edges.map(|(p, q)| if owns_edge(p, q) { 0 } else { -1 });
    let mut row_w = edges.map(|(p, q)| orient(p, q, px, py));
    let step_x = edges.map(|(p, q)| -(q.y - p.y) * ONE);
    let step_y = edges.map(|(p, q)| (q.x - p.x) * ONE);
    let inv = 1.0 / area as f32;
    let (za, zb, zc) = (a.z * inv, b.z * inv, c.z * inv);
    for y in y0..=y1 {
        let row = y as usize * samples.side;
        let mut w = row_w;
        for x in x0..=x1 {
            if (w[0] + bias[0]) | (w[1] + bias[1]) | (w[2] + bias[2]) >= 0 {
                let z = w[0] as f32 * za + w[1] as f32 * zb + w[2] as f32 * zc;
                let i = row + x as usize;
                if z < samples.depth[i] {
                    samples.depth[i] = z;
                    samples.triangle[i] = id;
                }
            }
            for k in 0..3 {
                w[k] += step_x[k];
            }
        }
        for k in 0..3 {
            row_w[k] += step_y[k];
        }
    }
}

/// Flat shading of one view: ambient, a key light from the upper left, a headlight.
struct Lights {
    towards_viewer: [f32; 3],
    key: [f32; 3],
}

impl Lights {
    fn new(camera: &Camera) -> Lights {
        let towards_viewer = scale(camera.look, -1.0);
        let key = normalize(add(
            add(towards_viewer, scale(camera.up, 0.6)),
            scale(camera.right, -0.4),
        ));
        Lights {
            towards_viewer,
            key,
        }
    }

    /// The colour of a face of colour `base` with this unit normal (either
    /// side faces the viewer).
    fn shade(&self, normal: [f32; 3], base: [f32; 3]) -> [u8; 3] {
        let facing = dot(normal, self.towards_viewer);
        let n = if facing < 0.0 {
            scale(normal, -1.0)
        } else {
            normal
        };
        let light = 0.45 + 0.35 * dot(n, self.key).max(0.0) + 0.25 * facing.abs();
        // Non-negative, so adding ½ and truncating rounds.
        base.map(|c| (c * light + 0.5).min(255.0) as u8)
    }
}

/// Marks both samples of every horizontally or vertically adjacent pair that
/// lies on different triangles (`t` ≠ `u`) and across a
/// `break_between(i, j, t, u)` discontinuity. Each pair is tested once,
/// row by row in parallel: a row's flags for its pairs with the row below go
/// to `below`, merged into both rows afterwards.
fn feature_lines(
    samples: &Samples,
    break_between: impl Fn(usize, usize, u32, u32) -> bool + Sync,
) -> Vec<bool> {
    let side = samples.side;
    let ids = &samples.triangle;
    let mut lines = vec![false; side * side];
    let mut below = vec![false; side * side];
    lines
        .par_chunks_mut(side)
        .zip(below.par_chunks_mut(side))
        .enumerate()
        .for_each(|(y, (line_row, below_row))| {
            let start = y * side;
            let row = &ids[start..start + side];
            for (x, pair) in row.windows(2).enumerate() {
                if pair[0] != pair[1] && break_between(start + x, start + x + 1, pair[0], pair[1]) {
                    line_row[x] = true;
                    line_row[x + 1] = true;
                }
            }
            if y + 1 < side {
                let next = &ids[start + side..start + 2 * side];
                for (x, ((&t, &u), flag)) in
                    row.iter().zip(next).zip(below_row.iter_mut()).enumerate()
                {
                    if t != u && break_between(start + x, start + side + x, t, u) {
                        *flag = true;
                    }
                }
            }
        });
    lines
        .par_chunks_mut(side)
        .enumerate()
        .for_each(|(y, line_row)| {
            let own = &below[y * side..(y + 1) * side];
            if y == 0 {
                line_row.iter_mut().zip(own).for_each(|(l, &o)| *l |= o);
            } else {
                let above = &below[(y - 1) * side..y * side];
                for ((l, &o), &a) in line_row.iter_mut().zip(own).zip(above) {
                    *l |= o | a;
                }
            }
        });
    lines
}

/// Box-filters ss×ss samples into each pixel, rows in parallel. A sample is
/// a line, the background, or its triangle's shade.
fn downsample(
    size: u32,
    ss: usize,
    samples: &Samples,
    lines: &[bool],
    marks: &[bool],
    shades: &[[u8; 3]],
) -> RgbImage {
    let side = samples.side;
    let ids = &samples.triangle;
    let mut image = RgbImage::new(size, size);
    let divisor = (ss * ss) as u32;
    // Averaging 4 or 16 samples is a shift; a division costs far more per pixel.
    let shift = divisor.is_power_of_two().then(|| divisor.trailing_zeros());
    let width = size as usize;
    image
        .par_chunks_mut(width * 3)
        .enumerate()
        .for_each(|(py, row)| {
            for (px, pixel) in row.chunks_exact_mut(3).enumerate() {
                let mut sum = [0u32; 3];
                for sy in py * ss..(py + 1) * ss {
                    let base = sy * side + px * ss;
                    for (k, (&id, &line)) in ids[base..base + ss]
                        .iter()
                        .zip(&lines[base..base + ss])
                        .enumerate()
                    {
                        let c = if marks.get(base + k) == Some(&true) {
                            MARK
                        } else if line {
                            LINE
                        } else if id == NONE {
                            BACKGROUND
                        } else {
                            shades[id as usize]
                        };
                        for k in 0..3 {
                            sum[k] += c[k] as u32;
                        }
                    }
                }
                for k in 0..3 {
                    let rounded = sum[k] + divisor / 2;
                    pixel[k] = match shift {
                        Some(bits) => rounded >> bits,
                        None => rounded / divisor,
                    } as u8;
                }
            }
        });
    image
}

fn sub(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn add(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

fn scale(a: [f32; 3], s: f32) -> [f32; 3] {
    [a[0] * s, a[1] * s, a[2] * s]
}

fn dot(a: [f32; 3], b: [f32; 3]) -> f32 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn cross(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn normalize(a: [f32; 3]) -> [f32; 3] {
    scale(a, 1.0 / dot(a, a).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An axis-aligned box as 12 outward-facing triangles.
    fn cuboid(min: [f32; 3], max: [f32; 3]) -> Mesh {
        let corner = |i: usize| {
            [
                if i & 1 == 0 { min[0] } else { max[0] },
                if i & 2 == 0 { min[1] } else { max[1] },
                if i & 4 == 0 { min[2] } else { max[2] },
            ]
        };
        let quads = [
            [0, 2, 3, 1], // z min
            [4, 5, 7, 6], // z max
            [0, 1, 5, 4], // y min
            [2, 6, 7, 3], // y max
            [0, 4, 6, 2], // x min
            [1, 3, 7, 5], // x max
        ];
        let mut triangles = Vec::new();
        for q in quads {
            triangles.push([q[0], q[1], q[2]]);
            triangles.push([q[0], q[2], q[3]]);
        }
        Mesh {
            vertices: (0..8).map(corner).collect(),
            triangles,
            closed: true,
            marked: Vec::new(),
            parts: Vec::new(),
        }
    }

    fn merge(parts: &[Mesh]) -> Mesh {
        let mut mesh = Mesh {
            closed: parts.iter().all(|p| p.closed),
            ..Mesh::default()
        };
        for part in parts {
            let base = mesh.vertices.len() as u32;
            mesh.vertices.extend(&part.vertices);
            mesh.triangles
                .extend(part.triangles.iter().map(|t| t.map(|i| i + base)));
        }
        mesh
    }

    pub(super) fn l_bracket() -> Mesh {
        merge(&[
            cuboid([0., 0., 0.], [50., 30., 5.]),
            cuboid([0., 0., 0.], [5., 30., 50.]),
        ])
    }

    fn mask(image: &RgbImage) -> Vec<bool> {
        image.pixels().map(|p| p.0 != BACKGROUND).collect()
    }

    /// (min x, min y, max x, max y) of the non-background pixels.
    fn extent(image: &RgbImage) -> (u32, u32, u32, u32) {
        let mut e = (u32::MAX, u32::MAX, 0, 0);
        for (x, y, p) in image.enumerate_pixels() {
            if p.0 != BACKGROUND {
                e = (e.0.min(x), e.1.min(y), e.2.max(x), e.3.max(y));
            }
        }
        e
    }

    fn mirrored(image: &RgbImage, horizontal: bool) -> RgbImage {
        if horizontal {
            image::imageops::flip_horizontal(image)
        } else {
            image::imageops::flip_vertical(image)
        }
    }

    fn differing(a: &[bool], b: &[bool]) -> usize {
        a.iter().zip(b).filter(|(x, y)| x != y).count()
    }

    #[test]
    fn camera_axes_follow_freecads_standard_views() {
        let c = View::Front.camera();
        assert_eq!(
            (c.look, c.up, c.right),
            ([0., 1., 0.], [0., 0., 1.], [1., 0., 0.])
        );
        assert_eq!(View::Left.camera().right, [0., -1., 0.]);
        assert_eq!(View::Right.camera().right, [0., 1., 0.]);
        assert_eq!(View::Bottom.camera().up, [0., -1., 0.]);
        let iso = View::Iso.camera();
        assert!((iso.right[0] - iso.right[1]).abs() < 1e-6 && iso.right[0] > 0.0);
        assert!(iso.up[2] > 0.0);
    }

    #[test]
    fn a_40_by_20_by_10_box_is_4_to_1_from_the_front_and_2_to_1_from_the_top() {
        let views = render(
            &cuboid([0., 0., 0.], [40., 20., 10.]),
            &RenderSettings::default(),
        )
        .unwrap();
        for (view, ratio) in [(View::Front, 4.0), (View::Top, 2.0)] {
            let (x0, y0, x1, y1) = extent(views.get(view));
            let (w, h) = ((x1 - x0 + 1) as f32, (y1 - y0 + 1) as f32);
            assert!((h - w / ratio).abs() <= 2.0, "{view:?}: {w} × {h}");
            assert!(w > 384.0 * 0.8, "{view:?} fills the frame: {w}");
            let (cx, cy) = ((x0 + x1) as f32 / 2.0, (y0 + y1) as f32 / 2.0);
            assert!(
                (cx - 191.5).abs() <= 2.0 && (cy - 191.5).abs() <= 2.0,
                "{view:?} centred: {cx}, {cy}"
            );
        }
    }

    #[test]
    fn marked_polylines_are_drawn_in_red_over_the_part_where_they_lie() {
        let plain = cuboid([0., 0., 0.], [40., 20., 10.]);
        // One edge along the top front of the box (y = 0, z = 10), and one
        // along its back bottom, which the front view cannot see.
        let marked = Mesh {
            marked: vec![
                vec![[0., 0., 10.], [40., 0., 10.]],
                vec![[0., 20., 0.], [20., 20., 0.], [40., 20., 0.]],
            ],
            ..plain.clone()
        };
        let settings = RenderSettings::default();
        let is_red = |p: &image::Rgb<u8>| p.0 == MARK;
        let red = |img: &RgbImage| img.pixels().filter(|p| is_red(p)).count();
        let plain = render(&plain, &settings).unwrap();
        assert!(!plain.marked);
        assert!(plain.images.iter().all(|(_, img)| red(img) == 0));
        let views = render(&marked, &settings).unwrap();
        assert!(views.marked);
        let front = views.get(View::Front);
        let (x0, y0, x1, y1) = extent(front);
        // The top edge runs along the silhouette's top; the hidden bottom one
        // is drawn too, along its bottom.
        for y in [y0 + 1, y1 - 1] {
            let row = (x0..=x1).filter(|&x| is_red(front.get_pixel(x, y))).count();
            assert!(
                row as u32 * 10 >= (x1 - x0) * 9,
                "row {y}: {row} red pixels"
            );
        }
        let middle = (y0 + y1) / 2;
        assert!((x0..=x1).all(|x| !is_red(front.get_pixel(x, middle))));
        // From the top both are lines across the full width, 20 mm apart.
        let top = views.get(View::Top);
        let (x0, _, x1, _) = extent(top);
        let column: Vec<u32> = (0..top.height())
            .filter(|&y| is_red(top.get_pixel((x0 + x1) / 2, y)))
            .collect();
        assert!(column.len() >= 4 && column.len() <= 12, "{column:?}");
    }

    #[test]
    fn the_views_of_an_l_bracket_differ_as_the_conventions_say() {
        let views = render(&l_bracket(), &RenderSettings::default()).unwrap();
        let m = |v| mask(views.get(v));
        let total = 384 * 384;
        for (a, b, horizontal) in [
            (View::Left, View::Right, true),
            (View::Back, View::Front, true),
            (View::Bottom, View::Top, false),
        ] {
            let diff = differing(&m(a), &mask(&mirrored(views.get(b), horizontal)));
            assert!(
                diff * 200 < total,
                "{a:?} is {b:?} mirrored: {diff} pixels differ"
            );
        }
        // Front (right = +X): the upright stands on the left, so the upper right is empty.
        let front = views.get(View::Front);
        assert_ne!(
            front.get_pixel(35, 60).0,
            BACKGROUND,
            "upright at the upper left"
        );
        assert_eq!(
            front.get_pixel(320, 60).0,
            BACKGROUND,
            "nothing at the upper right"
        );
        // Back mirrors it; right and left see the full 30 × 50 side.
        assert_eq!(views.get(View::Back).get_pixel(35, 60).0, BACKGROUND);
        assert_ne!(views.get(View::Back).get_pixel(384 - 36, 60).0, BACKGROUND);
        assert!(
            differing(&m(View::Front), &m(View::Right)) * 10 > total / 10,
            "front and right differ"
        );
        // Iso sees the front, right and top faces: three distinct shades.
        let mut shades: Vec<[u8; 3]> = views.get(View::Iso).pixels().map(|p| p.0).collect();
        shades.sort();
        shades.dedup();
        assert!(
            shades.len() >= 4,
            "iso has several shades: {}",
            shades.len()
        );
    }

    #[test]
    fn skipping_hidden_faces_of_a_closed_mesh_changes_no_pixel() {
        let closed = cuboid([0., 0., 0.], [30., 20., 10.]);
        let signed_volume: f32 = closed
            .triangles
            .iter()
            .map(|t| {
                let [a, b, c] = t.map(|i| closed.vertices[i as usize]);
                dot(a, cross(b, c)) / 6.0
            })
            .sum();
        assert!(signed_volume > 0.0, "the test boxes face outwards");
        let open = Mesh {
            closed: false,
            ..closed.clone()
        };
        let settings = RenderSettings::default();
        let (culled, full) = (
            render(&closed, &settings).unwrap(),
            render(&open, &settings).unwrap(),
        );
        for view in View::ALL {
            assert!(culled.get(view) == full.get(view), "{view:?} differs");
        }
    }

    #[test]
    fn feature_edges_are_drawn_between_the_faces_of_a_box() {
        let views = render(
            &cuboid([0., 0., 0.], [10., 10., 10.]),
            &RenderSettings::default(),
        )
        .unwrap();
        let iso = views.get(View::Iso);
        let luminance =
            |x: u32, y: u32| iso.get_pixel(x, y).0.iter().map(|&c| c as i32).sum::<i32>();
        // The cube's near vertical edge runs down from the centre of the iso view,
        // between the front and the right face: darker than both faces beside it.
        let (x0, y0, x1, y1) = extent(iso);
        let (cx, cy) = ((x0 + x1) / 2, (y0 + y1) / 2);
        for y in (cy + 20..y1 - 20).step_by(10) {
            let line = (cx - 1..=cx + 1).map(|x| luminance(x, y)).min().unwrap();
            assert!(
                line + 45 < luminance(cx - 10, y),
                "edge at y={y} darker than the front face"
            );
            assert!(
                line + 45 < luminance(cx + 10, y),
                "edge at y={y} darker than the right face"
            );
        }
        // The silhouette is outlined: darker than the face just inside it.
        let outline = (x0..x0 + 3).map(|x| luminance(x, cy + 40)).min().unwrap();
        assert!(
            outline + 45 < luminance(x0 + 10, cy + 40),
            "outline at the left"
        );
    }

    #[test]
    fn the_same_mesh_gives_byte_identical_pngs() {
        let dir = tempfile::tempdir().unwrap();
        let mesh = l_bracket();
        let mut bytes = Vec::new();
        for run in 0..2 {
            let views = render(&mesh, &RenderSettings::default()).unwrap();
            let path = dir.path().join(format!("iso{run}.png"));
            write_png(&path, views.get(View::Iso)).unwrap();
            bytes.push(std::fs::read(&path).unwrap());
        }
        assert_eq!(bytes[0], bytes[1]);
    }

    #[test]
    fn bad_meshes_get_clear_errors_and_degenerate_triangles_are_skipped() {
        let settings = RenderSettings::default();
        assert!(matches!(
            render(&Mesh::default(), &settings),
            Err(RenderError::Empty)
        ));
        let mut nan = cuboid([0.; 3], [1.; 3]);
        nan.vertices[3][1] = f32::NAN;
        assert!(matches!(
            render(&nan, &settings),
            Err(RenderError::NotFinite { index: 3, .. })
        ));
        let mut dangling = cuboid([0.; 3], [1.; 3]);
        dangling.triangles[5][2] = 99;
        assert!(matches!(
            render(&dangling, &settings),
            Err(RenderError::BadIndex { triangle: 5, .. })
        ));
        let flat = Mesh {
            vertices: vec![[0.; 3], [1., 1., 1.], [2., 2., 2.]],
            triangles: vec![[0, 1, 2], [0, 0, 1]],
            closed: false,
            marked: Vec::new(),
            parts: Vec::new(),
        };
        assert!(matches!(
            render(&flat, &settings),
            Err(RenderError::AllDegenerate(2))
        ));
        let mut with_slivers = cuboid([0.; 3], [2., 1., 1.]);
        with_slivers.triangles.push([0, 0, 0]);
        with_slivers.triangles.push([1, 2, 1]);
        let views = render(&with_slivers, &settings).unwrap();
        let (x0, _, x1, _) = extent(views.get(View::Front));
        assert!(x1 > x0 + 300);
        let big = RenderSettings {
            size: 4000,
            ..RenderSettings::default()
        };
        assert!(matches!(
            render(&with_slivers, &big),
            Err(RenderError::Size(4000))
        ));
    }
}
