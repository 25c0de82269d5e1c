//! Rigid alignment of a result's points onto a reference's: cadloop's ICP
//! from the 24 axis rotations, and the single ICP from the identity that
//! CADPrompt's published evaluation runs.

use kiddo::{ImmutableKdTree, SquaredEuclidean};
use nalgebra::{Matrix3, Rotation3, Vector3};

use super::Point;

/// A rigid motion: rotation then translation.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rigid {
    rotation: Matrix3<f64>,
    translation: Vector3<f64>,
}

impl Rigid {
    pub(super) fn apply(&self, p: Point) -> Point {
        let q = self.rotation * Vector3::from(p) + self.translation;
        [q.x, q.y, q.z]
    }
}

const ICP_ROUNDS: usize = 30;

/// Aligns `points` to the cloud in `tree`: ICP from each of the 24 axis
/// rotations, keeping the motion with the smallest mean distance.
pub(super) fn icp(points: &[Point], tree: &ImmutableKdTree<f64, 3>, targets: &[Point]) -> Rigid {
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

/// CADPrompt's ICP: from the identity, at most `max_rounds` rounds of
/// nearest-neighbour matching and a least-squares rigid fit, stopping when
/// the mean matching distance changes by less than `tolerance`. Gives the
/// points moved.
pub(super) fn icp_from_identity(
    points: &[Point],
    tree: &ImmutableKdTree<f64, 3>,
    targets: &[Point],
    max_rounds: usize,
    tolerance: f64,
) -> Vec<Point> {
    let mut moved = points.to_vec();
    let mut previous = 0.0;
    for _ in 0..max_rounds {
        let mut error = 0.0;
        let pairs: Vec<(Vector3<f64>, Vector3<f64>)> = moved
            .iter()
            .map(|m| {
                let nearest = tree.nearest_one::<SquaredEuclidean>(m);
                error += nearest.distance.sqrt();
                (
                    Vector3::from(*m),
                    Vector3::from(targets[nearest.item as usize]),
                )
            })
            .collect();
        let step = kabsch(&pairs);
        moved = moved.iter().map(|&p| step.apply(p)).collect();
        let mean = error / points.len().max(1) as f64;
        if (previous - mean).abs() < tolerance {
            break;
        }
        previous = mean;
    }
    moved
}
