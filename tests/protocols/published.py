"""The published evaluation procedures, written again from their papers and
the steps of their authors' public evaluation scripts, with the libraries
those scripts use (Open3D, scikit-learn, SciPy). The tests score the same
meshes with this and with `cadloop bench score` and compare the medians.

    python published.py cadprompt|text2cad CASES.json SEED [SEED ...]

CASES.json: a list of {"id", "reference", "result"} (paths; "result" null
when the system made nothing). Prints JSON: per seed, each case's scores
and the medians over the cases.

cadprompt (CADCodeVerify's evaluation of CADPrompt):
  1,000 points on each mesh by Open3D's Poisson-disk sampler; each cloud
  moved so its mean is the origin and scaled so its farthest point is at 1;
  point-to-point ICP from the identity moving the result onto the reference
  (nearest neighbours, an SVD rigid fit without reflection, at most 2,000
  rounds, stopping when the mean nearest distance changes by less than
  0.001); PCD = mean distance from each reference point to the nearest
  aligned result point; Hausdorff = the larger of the two directed maxima;
  IoGT = over coordinates of index-paired points, the share of the
  reference's coordinates above -0.6 whose paired result coordinate is
  above -0.6 too. No result: 1.73, 1.73, 0, counted in the medians.

text2cad (DeepCAD's evaluation, which Text2CAD reports):
  the result: 2,000 points drawn uniformly by area on its surface; the
  reference: 2,000 points taken at random from a denser cloud drawn the same
  way; a cloud with a coordinate beyond +-2 divided by its largest
  coordinate; no alignment; CD = mean squared nearest distance reference ->
  result + result -> reference, times 1,000. No result: left out.
"""

import json
import sys

import numpy as np
import open3d as o3d
from scipy.spatial import cKDTree
from sklearn.neighbors import NearestNeighbors

FAILED = {"pcd": 1.73, "hausdorff": 1.73, "iogt": 0.0}


def read_mesh(path):
    mesh = o3d.io.read_triangle_mesh(path)
    if len(mesh.triangles) == 0:
        raise SystemExit(f"{path}: no triangles")
    return mesh


def to_unit_sphere(points):
    centred = points - points.mean(axis=0)
    return centred / np.linalg.norm(centred, axis=1).max()


def rigid_fit(source, target):
    """Rotation and translation that best carry source onto target."""
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    u, _, vt = np.linalg.svd((source - source_mean).T @ (target - target_mean))
    rotation = vt.T @ u.T
    if np.linalg.det(rotation) < 0:
        vt[-1, :] *= -1
        rotation = vt.T @ u.T
    return rotation, target_mean - rotation @ source_mean


def icp_from_identity(moving, fixed, rounds=2000, tolerance=0.001):
    finder = NearestNeighbors(n_neighbors=1).fit(fixed)
    previous = 0.0
    for _ in range(rounds):
        distances, indices = finder.kneighbors(moving)
        rotation, translation = rigid_fit(moving, fixed[indices[:, 0]])
        moving = moving @ rotation.T + translation
        error = distances.mean()
        if abs(previous - error) < tolerance:
            break
        previous = error
    return moving


def nearest_distances(points, cloud):
    distances, _ = NearestNeighbors(n_neighbors=1).fit(cloud).kneighbors(points)
    return distances[:, 0]


def cadprompt(reference, result):
    truth = to_unit_sphere(np.asarray(read_mesh(reference).sample_points_poisson_disk(1000).points))
    made = to_unit_sphere(np.asarray(read_mesh(result).sample_points_poisson_disk(1000).points))
    made = icp_from_identity(made, truth)
    truth_to_made = nearest_distances(truth, made)
    made_to_truth = nearest_distances(made, truth)
    marked = truth > -0.6
    return {
        "pcd": float(truth_to_made.mean()),
        "hausdorff": float(max(truth_to_made.max(), made_to_truth.max())),
        "iogt": float(np.count_nonzero(marked & (made > -0.6)) / max(np.count_nonzero(marked), 1)),
    }


def uniform_points(path, count, rng):
    mesh = read_mesh(path)
    vertices = np.asarray(mesh.vertices)
    corners = vertices[np.asarray(mesh.triangles)]
    areas = 0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1)
    picked = rng.choice(len(areas), size=count, p=areas / areas.sum())
    u, v = rng.random(count), rng.random(count)
    folded = u + v > 1
    u[folded], v[folded] = 1 - u[folded], 1 - v[folded]
    a, b, c = corners[picked, 0], corners[picked, 1], corners[picked, 2]
    return a + u[:, None] * (b - a) + v[:, None] * (c - a)


def out_of_bounds_rule(points):
    largest = np.abs(points).max()
    return points / largest if largest > 2 else points


def text2cad(reference, result, rng):
    dense = uniform_points(reference, 8096, rng)
    truth = out_of_bounds_rule(dense[rng.choice(len(dense), size=2000, replace=False)])
    made = out_of_bounds_rule(uniform_points(result, 2000, rng))
    one, _ = cKDTree(made).query(truth)
    other, _ = cKDTree(truth).query(made)
    return {"cd": float((np.mean(one**2) + np.mean(other**2)) * 1e3)}


def main():
    protocol, cases_file, seeds = sys.argv[1], sys.argv[2], [int(s) for s in sys.argv[3:]]
    with open(cases_file) as f:
        cases = json.load(f)
    runs = []
    for seed in seeds:
        o3d.utility.random.seed(seed)
        rng = np.random.default_rng(seed)
        scores = {}
        for case in cases:
            if protocol == "cadprompt":
                scores[case["id"]] = FAILED if case["result"] is None else cadprompt(case["reference"], case["result"])
            elif case["result"] is not None:
                scores[case["id"]] = text2cad(case["reference"], case["result"], rng)
        metrics = sorted({m for s in scores.values() for m in s})
        medians = {m: float(np.median([s[m] for s in scores.values()])) for m in metrics}
        runs.append({"seed": seed, "cases": scores, "medians": medians})
    json.dump({"protocol": protocol, "runs": runs}, sys.stdout)


if __name__ == "__main__":
    main()
