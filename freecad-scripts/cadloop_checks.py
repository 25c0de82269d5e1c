"""cadloop's check library: measurable requirements tested on a built shape.

The LLM writes a request's checks as a list of calls (`CHECKS = [bbox(40, 20,
10), holes(6, count=1, through=True)]`) before any code exists. cadloop reads
that list as data (src/checks/: names, literal arguments), never as code, and
the harness calls `run_checks` with it after a successful build, in the same
sandboxed worker. Each check returns its status ("pass", "fail", or "error"
when the check itself cannot be applied), what was measured, what was expected
and a sentence that says both.

Lengths are in mm, angles in degrees. `tol` is an absolute tolerance in mm;
`rel` a relative one (0.02 = 2 %).
"""

import math
import time

import FreeCAD
import Part

import cadloop_parts

_sorted = sorted  # `bbox` has an argument named sorted

V = FreeCAD.Vector
AXES = {"x": V(1, 0, 0), "y": V(0, 1, 0), "z": V(0, 0, 1)}
# Surface types by the names checks use.
FACE_KINDS = {
    "plane": "Plane",
    "cylinder": "Cylinder",
    "cone": "Cone",
    "sphere": "Sphere",
    "torus": "Toroid",
    "bspline": "BSplineSurface",
}
# Two axes are the same line when they are this close (mm) and this parallel.
SAME_AXIS_MM = 1e-3
PARALLEL = 1 - 1e-6
# A cylinder's faces must go this far round (radians) to count as a hole.
FULL_TURN = 2 * math.pi * 0.99


class CheckError(Exception):
    """A check that cannot be applied as written (a bad argument)."""


def mm(value):
    """A length to 0.01, without trailing zeros."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def result(passed, measured, expected, message):
    return {
        "status": "pass" if passed else "fail",
        "measured": measured,
        "expected": expected,
        "message": message,
    }


def number(name, value, positive=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CheckError(f"{name} must be a number, not {value!r}")
    if positive and value <= 0:
        raise CheckError(f"{name} must be greater than 0, not {value!r}")
    return float(value)


def tolerance(value, name="tol"):
    value = number(name, value)
    if value < 0:
        raise CheckError(f"{name} must not be negative, not {value!r}")
    return value


def triple(name, value):
    """A 3-tuple of numbers or None (an axis left free)."""
    if value is None:
        return (None, None, None)
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise CheckError(f"{name} must be three values (x, y, z), not {value!r}")
    return tuple(None if v is None else number(name, v) for v in value)


def unit_vector(name, value):
    """A unit vector from "x", "y", "z" (or "-z"…) or a 3-tuple."""
    if isinstance(value, str):
        key = value.strip().lower().lstrip("+-")
        if key not in AXES:
            raise CheckError(f"{name} must be 'x', 'y', 'z' or (x, y, z), not {value!r}")
        vec = V(AXES[key])
        return vec * -1 if value.strip().startswith("-") else vec
    x, y, z = triple(name, value)
    if None in (x, y, z) or (x, y, z) == (0, 0, 0):
        raise CheckError(f"{name} must be a non-zero vector, not {value!r}")
    vec = V(x, y, z)
    vec.normalize()
    return vec


def axis_name(vec):
    for name, axis in AXES.items():
        if abs(vec.dot(axis)) > 0.999:
            return name.upper()
    return f"({vec.x:.2f}, {vec.y:.2f}, {vec.z:.2f})"


def within(measured, expected, tol):
    return abs(measured - expected) <= tol + 1e-9


# ---------------------------------------------------------------- the checks


def bbox(shape, x=None, y=None, z=None, tol=0.1, sorted=False):
    """Bounding-box size along X, Y and Z (None: any); with sorted=True the
    three sizes are compared largest to smallest, whatever the orientation."""
    tol = tolerance(tol)
    expected = [None if v is None else number("size", v, positive=True) for v in (x, y, z)]
    if all(v is None for v in expected):
        raise CheckError("give at least one size (x, y or z)")
    box = shape.BoundBox
    size = [box.XLength, box.YLength, box.ZLength]
    labels = ["X", "Y", "Z"]
    if sorted:
        size = _sorted(size, reverse=True)
        given = _sorted((v for v in expected if v is not None), reverse=True)
        expected = given + [None] * (3 - len(given))
        labels = ["largest", "middle", "smallest"]
    parts, wrong = [], []
    for label, got, want in zip(labels, size, expected):
        if want is None:
            continue
        ok = within(got, want, tol)
        parts.append(f"{label} {mm(got)}")
        if not ok:
            wrong.append(f"{label} = {mm(got)} mm, expected {mm(want)} ± {mm(tol)}")
    measured = " × ".join(mm(v) for v in size) + " mm"
    want_text = " × ".join("any" if v is None else mm(v) for v in expected) + f" mm ± {mm(tol)}"
    if wrong:
        return result(False, measured, want_text, "bounding box " + "; ".join(wrong) + f" (size {measured})")
    return result(True, measured, want_text, f"bounding box {measured} as expected")


def position(shape, min=None, max=None, center=None, tol=0.1):
    """Where the bounding box lies: its min corner, max corner or centre
    (3-tuples, None for a free axis)."""
    tol = tolerance(tol)
    box = shape.BoundBox
    corners = {
        "min": ([box.XMin, box.YMin, box.ZMin], triple("min", min)),
        "max": ([box.XMax, box.YMax, box.ZMax], triple("max", max)),
        "center": ([box.Center.x, box.Center.y, box.Center.z], triple("center", center)),
    }
    if all(v is None for _, want in corners.values() for v in want):
        raise CheckError("give min, max or center")
    wrong, measured, expected = [], [], []
    for name, (got, want) in corners.items():
        if all(v is None for v in want):
            continue
        measured.append(f"{name} ({', '.join(mm(v) for v in got)})")
        expected.append(f"{name} ({', '.join('any' if v is None else mm(v) for v in want)})")
        for axis, g, w in zip("xyz", got, want):
            if w is not None and not within(g, w, tol):
                wrong.append(f"{name} {axis} = {mm(g)} mm, expected {mm(w)} ± {mm(tol)}")
    measured, expected = "; ".join(measured), "; ".join(expected) + f" ± {mm(tol)} mm"
    if wrong:
        return result(False, measured, expected, "bounding box " + "; ".join(wrong))
    return result(True, measured, expected, f"bounding box at {measured} as expected")


def volume(shape, value, rel=0.02):
    """Volume in mm³ within a relative tolerance."""
    return _amount(shape.Volume, number("value", value, positive=True), tolerance(rel, "rel"), "volume", "mm³")


def area(shape, value, rel=0.02):
    """Surface area in mm² within a relative tolerance."""
    return _amount(shape.Area, number("value", value, positive=True), tolerance(rel, "rel"), "surface area", "mm²")


def _amount(got, want, rel, what, unit):
    ok = abs(got - want) <= rel * want + 1e-9
    measured = f"{mm(got)} {unit}"
    expected = f"{mm(want)} {unit} ± {rel * 100:g} %"
    if ok:
        return result(True, measured, expected, f"{what} {measured} as expected")
    off = (got - want) / want * 100
    return result(False, measured, expected, f"{what} = {measured}, expected {expected} ({off:+.1f} %)")


def solids(shape, count=1):
    """The number of separate solids."""
    count = _count("count", count)
    got = len(shape.Solids)
    word = "solid" if got == 1 else "solids"
    if got == count:
        return result(True, str(got), str(count), f"{got} {word} as expected")
    return result(False, str(got), str(count), f"{got} {word}, expected {count}")


def valid(shape):
    """The shape passes FreeCAD's validity check (closed, not self-intersecting)."""
    ok = bool(shape.isValid())
    return result(ok, "valid" if ok else "not valid", "valid",
                  "the shape is valid" if ok else "the shape is not valid (open or self-intersecting)")


def faces(shape, kind="any", count=None, min=None, max=None):
    """Faces of one surface type (plane, cylinder, cone, sphere, torus,
    bspline, or any): exactly `count`, or between `min` and `max`."""
    key = str(kind).lower()
    if key != "any" and key not in FACE_KINDS:
        raise CheckError(f"kind must be one of any, {', '.join(FACE_KINDS)}; not {kind!r}")
    bounds = [None if v is None else _count(n, v) for n, v in (("count", count), ("min", min), ("max", max))]
    if all(v is None for v in bounds):
        raise CheckError("give count, min or max")
    exact, low, high = bounds
    if key == "any":
        got = len(shape.Faces)
    else:
        got = sum(1 for f in shape.Faces if type(f.Surface).__name__ == FACE_KINDS[key])
    ok = (exact is None or got == exact) and (low is None or got >= low) and (high is None or got <= high)
    expected = str(exact) if exact is not None else \
        " and ".join(t for t in (low is not None and f"at least {low}", high is not None and f"at most {high}") if t)
    what = "faces" if key == "any" else f"{key} faces"
    if ok:
        return result(True, str(got), expected, f"{got} {what} as expected")
    return result(False, str(got), expected, f"{got} {what}, expected {expected}")


def _count(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < 0:
        raise CheckError(f"{name} must be a whole number ≥ 0, not {value!r}")
    return int(value)


def holes(shape, diameter, count=None, through=None, axis=None, depth=None, tol=0.1, *, features=None):
    """Round holes of a diameter (within `tol`): exactly `count` of them (or at
    least one), through or blind, along an axis ("x", "y", "z" or a vector),
    and for blind holes their depth. `features`: the shape's round features
    when another check already found them."""
    diameter = number("diameter", diameter, positive=True)
    tol = tolerance(tol)
    count = None if count is None else _count("count", count)
    want_axis = None if axis is None else unit_vector("axis", axis)
    depth = None if depth is None else number("depth", depth, positive=True)
    if through not in (None, True, False):
        raise CheckError(f"through must be True, False or None, not {through!r}")
    found = (features or RoundFeatures(shape)).find(concave=True)
    sized = [h for h in found if within(h["diameter"], diameter, tol)]
    fitting = [h for h in sized if _hole_fits(h, through, want_axis, depth, tol)]
    kind = {None: "", True: "through ", False: "blind "}[through]
    expected = (f"{count}" if count is not None else "at least 1") + f" {kind}hole(s) of ⌀{mm(diameter)} ± {mm(tol)}"
    if want_axis is not None:
        expected += f" along {axis_name(want_axis)}"
    if depth is not None:
        expected += f", {mm(depth)} deep"
    measured = describe_holes(found)
    ok = len(fitting) == count if count is not None else len(fitting) >= 1
    if ok:
        return result(True, measured, expected, f"{len(fitting)} matching hole(s) as expected: {describe_holes(fitting)}")
    message = f"{len(fitting)} hole(s) match, expected {expected}; holes found: {measured}"
    return result(False, measured, expected, message)


def _hole_fits(hole, through, axis, depth, tol):
    if through is not None and hole["through"] != through:
        return False
    if axis is not None and abs(hole["axis"].dot(axis)) < 0.999:
        return False
    if depth is not None and not within(hole["length"], depth, tol):
        return False
    return True


def describe_holes(holes_found):
    if not holes_found:
        return "none"
    groups = {}
    for h in holes_found:
        key = (mm(h["diameter"]), "through" if h["through"] else f"blind {mm(h['length'])} deep", axis_name(h["axis"]))
        groups[key] = groups.get(key, 0) + 1
    return ", ".join(f"{n} × ⌀{d} {kind} along {ax}" for (d, kind, ax), n in sorted(groups.items()))


def axis_distance(shape, diameter_a, diameter_b, distance, tol=0.1, *, features=None):
    """The distance between the axes of two round features (holes or bosses)
    of the given diameters: some pair of parallel axes is `distance` apart.
    `features`: as for `holes`."""
    diameter_a = number("diameter_a", diameter_a, positive=True)
    diameter_b = number("diameter_b", diameter_b, positive=True)
    distance = number("distance", distance)
    tol = tolerance(tol)
    round_features = (features or RoundFeatures(shape)).find(concave=None)
    firsts = [c for c in round_features if within(c["diameter"], diameter_a, tol)]
    seconds = [c for c in round_features if within(c["diameter"], diameter_b, tol)]
    expected = f"{mm(distance)} ± {mm(tol)} mm between ⌀{mm(diameter_a)} and ⌀{mm(diameter_b)} axes"
    if not firsts or not seconds:
        missing = [mm(d) for d, f in ((diameter_a, firsts), (diameter_b, seconds)) if not f]
        found = ", ".join(sorted({"⌀" + mm(c["diameter"]) for c in round_features})) or "none"
        return result(False, "no such features", expected,
                      f"no round feature of ⌀{' or ⌀'.join(missing)} mm (round features found: {found})")
    distances = []
    for a in firsts:
        for b in seconds:
            if a is b or abs(a["axis"].dot(b["axis"])) < PARALLEL:
                continue
            offset = b["point"] - a["point"]
            along = a["axis"] * offset.dot(a["axis"])
            distances.append((offset - along).Length)
    if not distances:
        return result(False, "no parallel pair", expected, "the features' axes are not parallel (or there is only one)")
    nearest = min(distances, key=lambda d: abs(d - distance))
    ok = within(nearest, distance, tol)
    measured = f"{mm(nearest)} mm"
    if ok:
        return result(True, measured, expected, f"axes {measured} apart as expected")
    return result(False, measured, expected, f"the nearest axis distance is {measured}, expected {expected}")


def wall(shape, thickness, at, direction="z", tol=0.1):
    """The thickness of material at a point, measured along a direction: the
    length of the solid's chord along the line through `at` that contains it
    (or, when `at` is in air, the nearest chord to it)."""
    thickness = number("thickness", thickness, positive=True)
    tol = tolerance(tol)
    x, y, z = triple("at", at)
    if None in (x, y, z):
        raise CheckError("at must give x, y and z")
    point = V(x, y, z)
    vec = unit_vector("direction", direction)
    reach = shape.BoundBox.DiagonalLength + (point - shape.BoundBox.Center).Length + 1
    line = Part.LineSegment(point - vec * reach, point + vec * reach).toShape()
    chords = []
    for edge in shape.common(line).Edges:
        a, b = edge.Vertexes[0].Point, edge.Vertexes[-1].Point
        t0, t1 = sorted(((a - point).dot(vec), (b - point).dot(vec)))
        gap = 0.0 if t0 <= 0 <= t1 else min(abs(t0), abs(t1))
        chords.append((gap, t1 - t0))
    expected = f"{mm(thickness)} ± {mm(tol)} mm along {axis_name(vec)} at ({mm(x)}, {mm(y)}, {mm(z)})"
    if not chords:
        return result(False, "no material", expected, f"the line through ({mm(x)}, {mm(y)}, {mm(z)}) along {axis_name(vec)} meets no material")
    gap, length = min(chords)
    measured = f"{mm(length)} mm"
    where = "" if gap == 0 else f" (the point is in air; nearest material {mm(gap)} mm away)"
    if within(length, thickness, tol):
        return result(True, measured, expected, f"wall {measured} thick as expected{where}")
    return result(False, measured, expected, f"wall {measured} thick, expected {expected}{where}")


def symmetric(shape, plane, at=None, rel=0.001):
    """Mirror symmetry about a plane ("xy", "yz" or "xz") at coordinate `at`
    along its normal (None: through the bounding box's centre): the share of
    the volume that its mirror image does not cover is at most `rel`."""
    key = str(plane).lower()
    normals = {"xy": "z", "yx": "z", "yz": "x", "zy": "x", "xz": "y", "zx": "y"}
    if key not in normals:
        raise CheckError(f"plane must be 'xy', 'yz' or 'xz', not {plane!r}")
    rel = tolerance(rel, "rel")
    axis = normals[key]
    normal = AXES[axis]
    box = shape.BoundBox
    centre = {"x": box.Center.x, "y": box.Center.y, "z": box.Center.z}[axis]
    offset = centre if at is None else number("at", at)
    base = V(normal) * offset
    where = f"{key.upper()} plane at {axis} = {mm(offset)}"
    expected = f"symmetric about the {where} (≤ {rel * 100:g} % off)"
    # A mirror-symmetric solid has its centre of mass on the plane: far off
    # it, the answer is known without the (slow) boolean.
    centre = _centre_of_mass(shape)
    off_plane = abs(centre.dot(normal) - offset)
    size = max(box.XLength, box.YLength, box.ZLength)
    if off_plane > max(rel, 1e-3) * size:
        measured = (f"centre of mass {mm(off_plane)} mm off the plane: at least "
                    f"{off_plane / size * 100:.3g} % of the volume off its mirror image")
        return result(False, measured, expected, f"not symmetric about the {where}: {measured}")
    lower_bound = _asymmetry_from_products(shape, "xyz".index(axis), offset)
    if lower_bound > max(rel, 1e-3):
        measured = f"at least {lower_bound * 100:.3g} % of the volume off its mirror image (from its moments)"
        return result(False, measured, expected, f"not symmetric about the {where}: {measured}")
    mirrored = shape.mirror(base, normal)
    left = shape.cut(mirrored).Volume
    share = left / shape.Volume if shape.Volume > 0 else 1.0
    measured = f"{share * 100:.3g} % of the volume off its mirror image"
    if share <= rel:
        return result(True, measured, expected, f"symmetric about the {where}")
    return result(False, measured, expected, f"not symmetric about the {where}: {measured}")


def _asymmetry_from_products(shape, a, offset):
    """A lower bound on the share of the volume off its mirror image about
    the plane with normal axis `a` at `offset`, from the products of
    inertia: the mirror-symmetric part contributes nothing to the integral
    of (distance from the plane) × (an in-plane coordinate), and the rest at
    most its volume times the largest such product."""
    solids = shape.Solids
    volume = sum(s.Volume for s in solids)
    if volume <= 0:
        return 0.0
    box = shape.BoundBox
    lows, highs = (box.XMin, box.YMin, box.ZMin), (box.XMax, box.YMax, box.ZMax)
    reach_a = max(abs(lows[a] - offset), abs(highs[a] - offset))
    bound = 0.0
    for b in (k for k in range(3) if k != a):
        middle = (lows[b] + highs[b]) / 2
        reach_b = (highs[b] - lows[b]) / 2
        if reach_a <= 0 or reach_b <= 0:
            continue
        # The integral of (x_a − offset)(x_b − middle), from each solid's own
        # products (FreeCAD gives −∫ about the solid's centre of mass).
        total = 0.0
        for solid in solids:
            own = solid.MatrixOfInertia.A[a * 4 + b]
            c = solid.CenterOfMass
            c = (c.x, c.y, c.z)
            total += -own + solid.Volume * (c[a] - offset) * (c[b] - middle)
        bound = max(bound, abs(total) / (volume * reach_a * reach_b))
    return bound


def _centre_of_mass(shape):
    solids = shape.Solids
    weight = sum(s.Volume for s in solids)
    if not solids or weight <= 0:
        return shape.BoundBox.Center
    acc = V(0, 0, 0)
    for solid in solids:
        acc += solid.CenterOfMass * solid.Volume
    return acc * (1.0 / weight)


# ------------------------------------------------------------- round features


class RoundFeatures:
    """A shape's full round features, found on first use and kept for the
    other checks of the same run."""

    def __init__(self, shape):
        self.shape = shape
        self._found = None

    def find(self, concave):
        """Cylindrical faces grouped by axis line and radius (a cylinder split
        into several faces counts once), with their diameter, axis, a point on
        it, axial length, whether they are holes (concave) and, for holes,
        whether both ends open to the outside. `concave` True: holes only;
        False: bosses only; None: both."""
        if self._found is None:
            self._found = _round_features(self.shape)
        features = [f for f in self._found if concave is None or f["concave"] == concave]
        for feature in features:
            if feature["concave"] and feature["through"] is None and concave:
                group, (t0, t1) = feature.pop("group"), feature.pop("ends")
                feature["through"] = _open_end(self.shape, group, t0, -1) and _open_end(self.shape, group, t1, 1)
        return features


def _round_features(shape):
    """Every full round feature, `through` left to be found (None) for holes."""
    pieces = []
    for face in shape.Faces:
        surface = face.Surface
        if type(surface).__name__ != "Cylinder":
            continue
        u0, u1, v0, v1 = face.ParameterRange
        mid = face.valueAt((u0 + u1) / 2, (v0 + v1) / 2)
        normal = face.normalAt((u0 + u1) / 2, (v0 + v1) / 2)
        axis = V(surface.Axis)
        axis.normalize()
        centre = V(surface.Center)
        radial = (mid - centre) - axis * (mid - centre).dot(axis)
        ends = [(face.valueAt(u0, v) - centre).dot(axis) for v in (v0, v1)]
        pieces.append({
            "radius": surface.Radius,
            "axis": axis,
            "point": centre,
            "span": u1 - u0,
            "range": (min(ends), max(ends)),
            "concave": normal.dot(radial) < 0,
        })
    groups = []
    for piece in pieces:
        for group in groups:
            if _same_feature(group, piece):
                _merge(group, piece)
                break
        else:
            groups.append(dict(piece))
    groups = _join_across_air(shape, [g for g in groups if g["span"] >= FULL_TURN])
    features = []
    for group in groups:
        t0, t1 = group["range"]
        feature = {
            "diameter": 2 * group["radius"],
            "axis": group["axis"],
            "point": group["point"] + group["axis"] * t0,
            "length": t1 - t0,
            "concave": group["concave"],
            "through": None if group["concave"] else False,
        }
        if group["concave"]:
            feature["group"], feature["ends"] = group, (t0, t1)
        features.append(feature)
    return features


def _same_feature(group, piece):
    if abs(group["radius"] - piece["radius"]) > SAME_AXIS_MM or group["concave"] != piece["concave"]:
        return False
    if abs(group["axis"].dot(piece["axis"])) < PARALLEL:
        return False
    offset = piece["point"] - group["point"]
    off_axis = offset - group["axis"] * offset.dot(group["axis"])
    if off_axis.Length > SAME_AXIS_MM:
        return False
    shift = offset.dot(group["axis"])
    sign = 1 if group["axis"].dot(piece["axis"]) > 0 else -1
    a, b = sorted((shift + sign * piece["range"][0], shift + sign * piece["range"][1]))
    g0, g1 = group["range"]
    return a <= g1 + SAME_AXIS_MM and b >= g0 - SAME_AXIS_MM


def _merge(group, piece):
    offset = piece["point"] - group["point"]
    shift = offset.dot(group["axis"])
    sign = 1 if group["axis"].dot(piece["axis"]) > 0 else -1
    a, b = sorted((shift + sign * piece["range"][0], shift + sign * piece["range"][1]))
    g0, g1 = group["range"]
    overlapping = a < g1 - SAME_AXIS_MM and b > g0 + SAME_AXIS_MM
    group["range"] = (min(a, g0), max(b, g1))
    # Pieces side by side round the axis add their turns; pieces one after
    # the other along it (a hole split by a cross hole) keep the larger.
    group["span"] = group["span"] + piece["span"] if overlapping else max(group["span"], piece["span"])


def _join_across_air(shape, groups):
    """Coaxial pieces of one radius with only air between them are one hole
    (a cross hole cut in two by the bore it crosses, a pin hole through both
    lugs of a clevis)."""
    joined = []
    for group in sorted(groups, key=lambda g: g["range"][0]):
        for other in joined:
            if _coaxial(other, group) and other["concave"] and group["concave"] \
                    and _air_between(shape, other, group):
                _merge(other, group)
                other["span"] = max(other["span"], group["span"])
                break
        else:
            joined.append(group)
    return joined


def _coaxial(a, b):
    if abs(a["radius"] - b["radius"]) > SAME_AXIS_MM or abs(a["axis"].dot(b["axis"])) < PARALLEL:
        return False
    offset = b["point"] - a["point"]
    return (offset - a["axis"] * offset.dot(a["axis"])).Length <= SAME_AXIS_MM


def _air_between(shape, a, b):
    """Whether the axis between two coaxial pieces runs through air only."""
    shift = (b["point"] - a["point"]).dot(a["axis"])
    sign = 1 if a["axis"].dot(b["axis"]) > 0 else -1
    b0, b1 = sorted((shift + sign * b["range"][0], shift + sign * b["range"][1]))
    a0, a1 = a["range"]
    start, end = (a1, b0) if b0 >= a1 else (b1, a0)
    if end <= start:
        return True
    samples = [start + (end - start) * k / 8 for k in range(1, 8)]
    return not any(shape.isInside(a["point"] + a["axis"] * t, 1e-6, True) for t in samples)


def _open_end(shape, group, t, outward):
    """Whether a hole's end at axial position t opens into air: points on a
    ring inside the hole's radius, just beyond the end and up to half a
    radius further, are all outside the solid (a drill point, a flat bottom
    or a narrower continuation closes it)."""
    axis = group["axis"]
    radius = group["radius"]
    step = max(1e-3, 1e-4 * shape.BoundBox.DiagonalLength)
    helper = V(1, 0, 0) if abs(axis.x) < 0.9 else V(0, 1, 0)
    u = axis.cross(helper)
    u.normalize()
    w = axis.cross(u)
    for beyond in (step, 0.25 * radius, 0.5 * radius):
        centre = group["point"] + axis * (t + outward * beyond)
        ring = [centre] + [
            centre + (u * math.cos(a) + w * math.sin(a)) * (0.8 * radius)
            for a in (2 * math.pi * k / 8 for k in range(8))
        ]
        if any(shape.isInside(p, 1e-6, True) for p in ring):
            return False
    return True


def clearance(shape, part_a, part_b, min, *, parts):
    """The gap between two named parts is at least `min` mm; parts that
    overlap have no clearance."""
    need = tolerance(min, "min")
    a, b = _part(parts, part_a), _part(parts, part_b)
    gap = max(0.0, a.distToShape(b)[0])
    shared = _shared_volume(a, b) if gap <= 1e-9 else 0.0
    if shared > 0:
        return result(False, f"overlap {shared:.4g} mm^3", f">= {mm(need)} mm",
                      f"{part_a!r} and {part_b!r} overlap by {shared:.4g} mm^3; the clearance "
                      f"between them must be at least {mm(need)} mm")
    return result(gap + 1e-6 >= need, f"{mm(gap)} mm", f">= {mm(need)} mm",
                  f"the gap between {part_a!r} and {part_b!r} is {mm(gap)} mm; it must be at least {mm(need)} mm")


def interference(shape, part_a, part_b, max=0, *, parts):
    """The volume two named parts share is at most `max` mm³ (0: they may
    touch, not overlap)."""
    allowed = tolerance(max, "max")
    a, b = _part(parts, part_a), _part(parts, part_b)
    shared = _shared_volume(a, b)
    return result(shared <= allowed + 1e-3, f"{shared:.4g} mm^3", f"<= {allowed:.4g} mm^3",
                  f"{part_a!r} and {part_b!r} share {shared:.4g} mm^3; at most {allowed:.4g} mm^3 is allowed")


def _shared_volume(a, b):
    common = cadloop_parts.common_shape(a, b)
    return 0.0 if common is None else common.Volume


def _part(parts, name):
    """A named part's shape, the name matched without regard to case."""
    if not isinstance(name, str):
        raise CheckError(f"a part is named by a string, not {name!r}")
    if not parts:
        raise CheckError(f"the result has no named parts, so none is called {name!r}: build "
                         "`result` as a mapping of names to shapes, e.g. {\"box\": box, \"lid\": lid}")
    for key, shape in parts.items():
        if key.lower() == name.strip().lower():
            return shape
    raise CheckError(f"there is no part named {name!r}; the parts are " + ", ".join(repr(k) for k in parts))


# ------------------------------------------------------------------ running

LIBRARY = {
    "bbox": bbox,
    "position": position,
    "volume": volume,
    "area": area,
    "solids": solids,
    "valid": valid,
    "faces": faces,
    "holes": holes,
    "axis_distance": axis_distance,
    "wall": wall,
    "symmetric": symmetric,
    "clearance": clearance,
    "interference": interference,
}


# The checks that take the run's round features, found once for them all.
TAKE_FEATURES = frozenset(["holes", "axis_distance"])
# The checks between two named parts, given the parts by name.
TAKE_PARTS = frozenset(["clearance", "interference"])


def run_checks(shape, checks, parts=None):
    """Runs each check ({"name", "args": {keyword: value}}) on `shape`, or
    on the part its `part` names (`parts`: the result's parts by name); a
    check that raises is an "error" with the reason, never a crash. Each
    result has the milliseconds it took."""
    parts = parts or {}
    results = []
    features = {}
    for check in checks:
        started = time.perf_counter()
        name = check.get("name")
        function = LIBRARY.get(name)
        args = dict(check.get("args", {}))
        try:
            if function is None:
                raise CheckError(f"there is no check named {name!r}")
            target = shape
            if "part" in args and name not in TAKE_PARTS:
                target = _part(parts, args.pop("part"))
            extra = {}
            if name in TAKE_FEATURES:
                extra["features"] = features.setdefault(id(target), RoundFeatures(target))
            if name in TAKE_PARTS:
                extra["parts"] = parts
            outcome = function(target, **args, **extra)
        except CheckError as err:
            outcome = {"status": "error", "measured": "", "expected": "", "message": f"the check cannot be applied: {err}"}
        except TypeError as err:
            outcome = {"status": "error", "measured": "", "expected": "", "message": f"the check cannot be applied: {err}"}
        except Exception as err:  # noqa: BLE001 - a geometry failure in a check is its result
            outcome = {"status": "error", "measured": "", "expected": "",
                       "message": f"FreeCAD could not measure this: {type(err).__name__}: {err}"}
        outcome["ms"] = round((time.perf_counter() - started) * 1000.0, 3)
        results.append(outcome)
    return results
