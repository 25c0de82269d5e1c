"""A result of several named parts: a box and its lid, a hinge's leaves and
its pin. The code gives them as a mapping, `result = {"box": box, "lid":
lid}` (shapes or document objects), with colours in `COLORS = {"lid":
"#c0392b"}` or through `obj.ViewObject.ShapeColor`; a document left with
several visible end products gives each as a part, named by its label.

The model stays their union (facts, checks and benchmarks see it as before);
the parts add their own facts, the gaps and overlaps between them, one mesh
each after the union's, one STEP product each and one FCStd object each.
"""

import FreeCAD
import Part

import cadloop_diagnose
import cadloop_macro
import cadloop_measure
from cadloop_job import NO_SOLID, JobFailure

# At most this many parts; more is not an assembly a person asked for in words.
MAX_PARTS = 64
# Gaps and overlaps are measured between every two parts up to this many parts
# (each pair is a distance and perhaps a boolean).
MAX_PAIRED = 24
# Two parts this close (mm) touch.
TOUCH_MM = 1e-4
# An overlap smaller than this (mm³) is the booleans' noise, not an interference.
OVERLAP_MM3 = 1e-3
# The colours of parts the code gave none, in order: distinct and readable
# on white, in sRGB 0-255.
PALETTE = [
    (150, 172, 205), (214, 133, 68), (104, 168, 112), (196, 96, 110),
    (142, 118, 188), (196, 178, 84), (84, 170, 178), (160, 132, 100),
]
# The names the code may give the parts' colours under.
COLOR_NAMES = ("COLORS", "COLOURS", "colors", "colours")


class PartOfResult:
    """One named part: its shape, colour (sRGB 0-255) and the document
    object it came from, if any."""

    def __init__(self, name, shape, color, source=None):
        self.name = name
        self.shape = shape
        self.color = color
        self.source = source


def from_mapping(value, namespace):
    """The parts of a `result` mapping, in its order; refuses a part that is
    not a shape, or has no solid, naming it."""
    if not value:
        raise JobFailure(NO_SOLID, "`result` is an empty mapping: give each part a name and its shape, "
                         "e.g. result = {\"box\": box, \"lid\": lid}")
    if len(value) > MAX_PARTS:
        raise JobFailure(NO_SOLID, f"`result` has {len(value)} parts; at most {MAX_PARTS} are kept apart: "
                         "fuse the small ones (bolts of one kind, say) into one part each")
    colors = given_colors(namespace)
    parts = []
    for key, item in value.items():
        name = part_name(key)
        source = None
        if isinstance(getattr(item, "Shape", None), Part.Shape) and hasattr(item, "TypeId"):
            source = item
            shape = item.Shape
        elif isinstance(item, Part.Shape):
            shape = item
        else:
            raise JobFailure(NO_SOLID, f"part {name!r} of `result` is a {type(item).__name__}: "
                             "give each part a Part.Shape (a solid) or a document object with a Shape")
        if shape.isNull() or not shape.Solids:
            raise JobFailure(NO_SOLID, f"part {name!r} of `result` has no solid: extrude or revolve a closed "
                             "profile, or make a solid from a closed shell")
        color = color_value(colors.get(key, colors.get(name)))
        if color is None and source is not None:
            color = view_color(source)
        parts.append(PartOfResult(name, shape, color, source))
    return unique(parts)


def from_objects(objects):
    """Several visible end products of a document, each a part named by its label."""
    parts = [PartOfResult(part_name(o.Label or o.Name), o.Shape, view_color(o), o) for o in objects]
    return unique(parts)


def part_name(key):
    name = " ".join(str(key).split())[:64]
    return name or "part"


def unique(parts):
    """Names made unique (`leaf`, `leaf 2`), colours filled in from the palette."""
    seen = set()
    for index, part in enumerate(parts):
        name, n = part.name, 1
        while name.lower() in seen:
            n += 1
            name = f"{part.name} {n}"
        part.name = name
        seen.add(name.lower())
        if part.color is None:
            part.color = PALETTE[index % len(PALETTE)]
    return parts


def given_colors(namespace):
    for name in COLOR_NAMES:
        value = namespace.get(name)
        if isinstance(value, dict):
            return value
    return {}


def view_color(obj):
    """The colour the code gave the object's view (`ViewObject.ShapeColor`)."""
    job = cadloop_macro.RUNNING.job
    if job is None or obj.Name not in job.colors:
        return None
    job.colors_used.add(obj.Name)
    return color_value(job.colors[obj.Name])


def color_value(value):
    """sRGB 0-255 from "#rrggbb", (r, g, b) in 0-1 (FreeCAD's way) or 0-255,
    with or without alpha, or the first of a list of them (`DiffuseColor`, a
    colour per face); None for anything else."""
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], (tuple, list)):
        value = value[0]
    if isinstance(value, str):
        text = value.strip().lstrip("#")
        if len(text) == 6:
            try:
                return tuple(int(text[i:i + 2], 16) for i in (0, 2, 4))
            except ValueError:
                return None
        return None
    if isinstance(value, (tuple, list)) and len(value) in (3, 4):
        rgb = value[:3]
        if not all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in rgb):
            return None
        # FreeCAD's colours run 0-1; anything above 1 is on the 0-255 scale.
        scale = 255.0 if all(0 <= c <= 1 for c in rgb) else 1.0
        return tuple(max(0, min(255, int(round(c * scale)))) for c in rgb)
    return None


def union(parts):
    """The parts as one shape: fused where they meet; their compound if the
    fuse fails or is not valid (parts that fit closely, such as a pin in its
    hole, can leave OpenCASCADE a fusion it cannot orient, while each part
    is sound)."""
    shapes = [p.shape for p in parts]
    if len(shapes) == 1:
        return shapes[0].copy()
    try:
        fused = shapes[0].fuse(shapes[1:]).removeSplitter()
        if fused.isValid():
            return fused
    except Exception:  # noqa: BLE001 - a failed fuse still leaves a usable compound
        pass
    return Part.makeCompound(shapes)


def measure_each(parts, lines, names):
    """Each part's geometry facts; refuses a part that is not a valid solid
    (the model's own refusal), naming it."""
    measured = []
    for part in parts:
        facts = cadloop_measure.measure(part.shape)
        try:
            cadloop_measure.check_shape(part.shape, facts, lines, names)
        except JobFailure as failure:
            failure.message = f"part {part.name!r}: " + failure.message
            raise
        measured.append(facts)
    return measured


def hex_color(rgb):
    return "#" + "".join(f"{c:02x}" for c in rgb)


def facts(parts, measured):
    """Each part's facts (`measured`: their geometry facts, measure_each)
    and, between every two parts, the gap and the overlap; with the shapes
    the overlapping pairs share (None for the others), for where they meet."""
    listed = [{
        "name": part.name,
        "color": hex_color(part.color),
        "valid": facts["valid"],
        "solids": facts["solids"],
        "volume": facts["volume"],
        "bbox": facts["bbox"],
        "center_of_mass": facts["center_of_mass"],
    } for part, facts in zip(parts, measured)]
    pair_facts, shared = pairs(parts)
    return listed, pair_facts, shared


def pairs(parts):
    """The gap (mm, 0 when they touch or overlap) and the overlap (mm³)
    between every two parts, none past MAX_PAIRED parts; and the shape each
    overlapping pair shares (None for the others)."""
    if len(parts) > MAX_PAIRED:
        return [], []
    found, shared = [], []
    for i, a in enumerate(parts):
        for b in parts[i + 1:]:
            gap = distance(a.shape, b.shape)
            common = overlap(a.shape, b.shape) if gap <= TOUCH_MM else None
            found.append({"parts": [a.name, b.name], "gap": gap,
                          "overlap": common.Volume if common is not None else 0.0})
            shared.append(common)
    return found, shared


def distance(a, b):
    try:
        return max(0.0, float(a.distToShape(b)[0]))
    except Exception:  # noqa: BLE001 - an unmeasurable pair is taken as touching
        return 0.0


def common_shape(a, b):
    """The shape two shapes share; None when their boxes do not meet or
    nothing is shared. OpenCASCADE's errors reach the caller."""
    if not a.BoundBox.intersect(b.BoundBox):
        return None
    common = a.common(b)
    return None if common.isNull() else common


def overlap(a, b):
    """The shape two parts share, when it is more than the booleans' noise
    (OVERLAP_MM3) and can be computed; else None."""
    try:
        common = common_shape(a, b)
    except Exception:  # noqa: BLE001 - an overlap that cannot be computed is not reported
        return None
    return common if common is not None and common.Volume > OVERLAP_MM3 else None


def notes(parts, part_facts, pair_facts, shared, diagonal):
    """What is worth saying of the parts: overlaps (interference, where the
    `shared` shape lies), a part far from every other, and a part that is
    itself several pieces apart."""
    found = []
    for pair, common in zip(pair_facts, shared):
        if common is not None:
            a, b = pair["parts"]
            found.append(cadloop_diagnose.defect(
                "interference",
                f"parts {a!r} and {b!r} overlap by {pair['overlap']:.4g} mm^3",
                "parts that fit together must only touch: move one, make it smaller, or cut the "
                "other's room out of it (e.g. a hole with clearance for a pin)",
                where=cadloop_diagnose.region([common]) if common.Vertexes else None,
                severity=cadloop_diagnose.NOTE,
            ))
    if pair_facts and len(parts) > 1:
        far = max(1.0, 0.05 * diagonal)
        said = set()
        for part in parts:
            gaps = [(p["gap"], p["parts"][1] if p["parts"][0] == part.name else p["parts"][0])
                    for p in pair_facts if part.name in p["parts"]]
            gap, nearest = min(gaps)
            # Two parts each nearest the other are one note.
            if gap > far and frozenset((part.name, nearest)) not in said:
                said.add(frozenset((part.name, nearest)))
                found.append(cadloop_diagnose.defect(
                    "part-apart",
                    f"part {part.name!r} is {gap:.4g} mm from the nearest other part ({nearest!r})",
                    "if it rests on, fits in or is fixed to another part, move it there; parts of an "
                    "assembly are placed where they go together, unless an exploded view was asked for",
                    where=cadloop_diagnose.region([part.shape]), severity=cadloop_diagnose.NOTE,
                ))
    for part, measured in zip(parts, part_facts):
        if measured["solids"] > 1:
            for note in cadloop_diagnose.notes(part.shape):
                note["message"] = f"part {part.name!r}: " + note["message"]
                found.append(note)
    return found


def tessellate(parts, deflection, vertex_start, triangle_start):
    """Each part's mesh after the model's, with its place among the vertices
    and triangles as [first, count]; the bytes to append."""
    vertices, indices, ranges = [], [], []
    first_vertex, first_triangle = vertex_start, triangle_start
    for part in parts:
        points, triangles, n_points, n_triangles = cadloop_measure.mesh_bytes(part.shape, deflection, first_vertex)
        vertices.append(points)
        indices.append(triangles)
        ranges.append({"vertices": [first_vertex, n_points], "triangles": [first_triangle, n_triangles]})
        first_vertex += n_points
        first_triangle += n_triangles
    return b"".join(vertices), b"".join(indices), ranges


def assembly_document(parts):
    """A document with one Part::Feature per part, labelled with its name,
    grouped under an App::Part named `cadloop`: what model.step and
    model.FCStd are written from."""
    doc = FreeCAD.newDocument("cadloop_parts")
    group = doc.addObject("App::Part", "Assembly")
    group.Label = "cadloop"
    for part in parts:
        feature = doc.addObject("Part::Feature", "Part")
        feature.Label = part.name
        feature.Shape = part.shape
        feature.addProperty("App::PropertyColor", "Color", "cadloop", "the part's colour")
        feature.Color = tuple(c / 255.0 for c in part.color)
        group.addObject(feature)
    doc.recompute()
    return doc, group


def export_step(group, path):
    """model.step as an assembly: one product per part, with its name."""
    import Import

    Import.export([group], path)
