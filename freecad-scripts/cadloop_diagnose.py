"""Diagnoses: what is wrong with a shape the harness refuses, where, the
likely cause and the fix in FreeCAD terms; the one exact repair (a closed
solid that is only inside out is reversed); and hints for the errors
FreeCAD raises while code builds a part, tied to the line.

A defect is a dict: kind (a word), severity ("error": the shape is refused;
"note": it is accepted and the note says what was noticed or healed), count,
message (what and where, in words), hint (the likely cause and the fix),
where ({"min", "max"}: the bounding box of the faulty edges or faces, in
mm) and, for a repair, healed: True. result.json carries the list as
"diagnosis"; the error's message carries it as text for the LLM.
"""

import ast
import re

import FreeCAD
import Part

ERROR = "error"
NOTE = "note"

# Below this area (mm²) a face is collapsed; below this distance (mm) solids touch.
MIN_AREA = 1e-9
TOUCH_MM = 1e-6
# Solids are compared pairwise for "apart" only up to this many.
MAX_PIECES = 20


def defect(kind, message, hint, count=1, where=None, severity=ERROR):
    found = {"kind": kind, "severity": severity, "count": count, "message": message, "hint": hint}
    if where is not None:
        found["where"] = where
    return found


def point(v):
    return "(" + ", ".join(f"{c:.4g}" for c in (v.x, v.y, v.z)) + ")"


def region(shapes):
    """The bounding box of `shapes`, as result.json gives it."""
    box = None
    for shape in shapes:
        if box is None:
            box = shape.BoundBox
        else:
            box.add(shape.BoundBox)
    if box is None:
        return None
    return {"min": [box.XMin, box.YMin, box.ZMin], "max": [box.XMax, box.YMax, box.ZMax]}


def region_text(where):
    lo, hi = where["min"], where["max"]
    same = all(abs(a - b) < 1e-9 for a, b in zip(lo, hi))
    fmt = lambda v: "(" + ", ".join(f"{c:.4g}" for c in v) + ")"  # noqa: E731
    return f"at {fmt(lo)}" if same else f"between {fmt(lo)} and {fmt(hi)}"


# ------------------------------------------------------------ shape defects


def diagnose(shape, lines=(), names=None):
    """The defects of `shape`, errors first; empty when none is found.
    `lines`: the code's, to point at the line that likely made a defect;
    `names`: the variables the code left, to find the open wire it made."""
    names = names or {}
    cause = making_operation(shape, lines, names)
    # The operation that made the result, when it tells why, comes first.
    return ([cause] if cause else []) + shape_defects(shape, lines, names)


def shape_defects(shape, lines, names):
    """What is wrong with `shape` itself (`diagnose` without the operation
    that made it)."""
    if shape.isNull():
        return [defect("null", "the result is a null shape",
                       "an operation gave nothing (a boolean with a wire or an edge, a failed feature): "
                       "check each step's result with `shape.isNull()` and `shape.isValid()`")]
    if not shape.Faces:
        empty = defect("empty", "the result has no faces: it is empty",
                       "a boolean that leaves nothing gives an empty shape: make sure the operands of "
                       "`common` overlap, and that a `cut` does not remove the whole part")
        point_at(empty, lines, (".common(", ".cut("), "the last boolean is", last=True)
        return [empty]
    found = open_profiles(shape) + open_shells(shape)
    gaps = [d for d in found if d["kind"] in ("open-profile", "open-shell")]
    made = open_wire_line(lines, names) if gaps else None
    for gap in gaps:
        if made is not None:
            line, name = made
            gap["line"] = line
            gap["message"] += f"; the open wire `{name}` is made at line {line}"
        else:
            point_at(gap, lines, ("makePolygon(",), "the profile is made")
    found += self_intersections(shape, lines)
    valid = shape.isValid()
    if not valid:
        found += crossed_profiles(shape, lines)
    found += collapsed_faces(shape)
    if not found and not valid:
        found += invalid_faces(shape)
    closed = all(s.isClosed() for s in shape.Shells)
    if shape.Solids and closed and shape.Volume < 0:
        found.append(defect(
            "inside-out",
            f"the solid is inside out (volume {shape.Volume:.6g} mm³): its faces point inwards",
            "a solid built from faces or a shell whose faces are ordered the wrong way round is "
            "inside out; build it from a closed profile (extrude, revolve) or call `solid.reverse()`",
        ))
    return found


def open_profiles(shape):
    """Faces bounded by a wire whose ends do not meet: `Part.Face` of an open
    polygon makes one, and its extrusion has a gap."""
    faces, wires = [], []
    for face in shape.Faces:
        open_wires = [w for w in face.Wires if not w.isClosed()]
        if open_wires:
            faces.append(face)
            wires += open_wires
    if not wires:
        return []
    ends = "; ".join(f"{point(w.Vertexes[0].Point)} and {point(w.Vertexes[-1].Point)}"
                     for w in wires[:3] if w.Vertexes)
    return [defect(
        "open-profile",
        f"{len(faces)} face(s) are bounded by an open wire whose ends do not meet ({ends})",
        "`Part.makePolygon` makes a closed wire only when the last point repeats the first: "
        "write `Part.makePolygon([p0, p1, p2, p0])`, or add the closing edge, before `Part.Face` or an extrusion",
        count=len(wires),
        where=region(wires),
    )]


def free_edges(shape):
    """The edges of `shape` that bound one face only: the free edges of its
    shells and the boundaries of faces that are in no shell. A seam (a
    cylinder's, met twice by one face) is not free."""
    edges = shell_free_edges(shape)
    in_shells = [f for s in shape.Shells for f in s.Faces]
    loose = [f for f in shape.Faces if not any(f.isSame(g) for g in in_shells)]
    if loose:
        try:
            edges += Part.Shell(loose).getFreeEdges().Edges
        except Exception:  # noqa: BLE001 - faces that make no shell: their own edges
            edges += [e for f in loose for e in f.Edges]
    return edges


def shell_free_edges(shape):
    """The free edges of `shape`'s open shells (each on one face only)."""
    return [e for shell in shape.Shells if not shell.isClosed() for e in shell.getFreeEdges().Edges]


def open_shells(shape):
    """Shells with free edges (edges on one face only): a surface with a gap."""
    free = shell_free_edges(shape)
    if not free:
        return []
    where = region(free)
    return [defect(
        "open-shell",
        f"the surface is not closed: {len(free)} free edge(s) (each on one face only) {region_text(where)}",
        "a solid needs a closed surface: extrude or revolve a closed profile (`Part.makePolygon` "
        "closes only when the last point repeats the first), or add the missing faces before "
        "`Part.Shell` and `Part.Solid`",
        count=len(free),
        where=where,
    )]


# The free edges drawn on a refused shape's views: at most this many points
# in all, each edge followed to within this share of the shape's size.
MAX_OUTLINE_POINTS = 5000
OUTLINE_DEFLECTION = 0.002


def free_edge_lines(shape):
    """Where `shape` is open, as polylines ([[x, y, z], …] each, in mm) for
    the views to draw in a contrasting colour: its free edges, and the
    closing edge each open wire bounding a face lacks (from its last point
    back to its first). Empty when it has neither."""
    deflection = max(shape.BoundBox.DiagonalLength * OUTLINE_DEFLECTION, 1e-6)
    lines, total = [], 0
    for face in shape.Faces:
        for wire in face.Wires:
            if wire.isClosed() or len(wire.Vertexes) < 2:
                continue
            first, last = wire.OrderedVertexes[0].Point, wire.OrderedVertexes[-1].Point
            if first.distanceToPoint(last) > deflection:
                lines.append([[last.x, last.y, last.z], [first.x, first.y, first.z]])
                total += 2
    for edge in free_edges(shape):
        try:
            points = edge.discretize(Deflection=deflection)
        except Exception:  # noqa: BLE001 - an edge that cannot be followed: its ends
            points = [v.Point for v in edge.Vertexes]
        if len(points) < 2:
            continue
        if total + len(points) > MAX_OUTLINE_POINTS:
            break
        total += len(points)
        lines.append([[p.x, p.y, p.z] for p in points])
    return lines


def self_intersections(shape, lines=()):
    """Tori whose tube is wider than their ring: they pass through their own
    axis. OpenCASCADE does not always call them invalid."""
    found = []
    for face in shape.Faces:
        surface = face.Surface
        if type(surface).__name__ != "Toroid":
            continue
        ring, tube = surface.MajorRadius, surface.MinorRadius
        if tube >= ring:
            found.append(defect(
                "self-intersecting",
                f"a torus with tube radius {tube:.4g} mm ≥ ring radius {ring:.4g} mm passes through its "
                "own axis and intersects itself",
                "`Part.makeTorus(R, r)` needs r < R: the first argument is the ring radius (axis to the "
                "tube's centre), the second the tube radius",
                where=region([face]),
            ))
    for crossing in found:
        point_at(crossing, lines, ("makeTorus(", "Part::Torus"), "the torus is made")
    return found


def crossed_profiles(shape, lines=()):
    """Faces whose boundary crosses itself: a profile whose points are out of
    order around the outline (a bow-tie) gives one, and OpenCASCADE calls
    the extrusion unorientable."""
    faces = []
    for face in shape.Faces:
        if face.isValid():
            continue
        try:
            face.check()
        except Exception as err:  # noqa: BLE001 - the check's words are the finding
            if "Self-intersecting wire" in str(err):
                faces.append(face)
    if not faces:
        return []
    where = region(faces)
    found = defect(
        "self-intersecting",
        f"{len(faces)} face(s) are bounded by a wire that crosses itself {region_text(where)}",
        "a profile's points must go once around the outline, in order, without its edges crossing "
        "(a bow-tie order such as (0,0), (10,10), (10,0), (0,10) crosses): reorder the points",
        count=len(faces),
        where=where,
    )
    point_at(found, lines, ("makePolygon(",), "the profile is made")
    return [found]


def collapsed_faces(shape):
    faces = [f for f in shape.Faces if abs(f.Area) < MIN_AREA]
    if not faces:
        return []
    where = region(faces)
    return [defect(
        "collapsed-face",
        f"{len(faces)} face(s) have no area {region_text(where)}",
        "a face of zero area comes from repeated points in a profile or an extrusion of length 0: "
        "remove the duplicate points and give every extrusion a length",
        count=len(faces),
        where=where,
    )]


def invalid_faces(shape):
    """For a shape OpenCASCADE finds invalid for a reason not named above:
    its invalid faces and where they are, else its own check's words."""
    faces = [f for f in shape.Faces if not f.isValid()]
    detail = check_text(shape)
    if not faces:
        return [defect(
            "invalid", "OpenCASCADE finds the shape invalid: " + (detail or "no detail given"),
            "check each feature with `shape.isValid()` to find the step that breaks it")]
    where = region(faces)
    message = f"{len(faces)} face(s) are invalid {region_text(where)}"
    if detail:
        message += f" (OpenCASCADE: {detail})"
    return [defect(
        "invalid-face", message,
        "rebuild the faces from closed, non-crossing wires; check each feature with `shape.isValid()` "
        "to find the step that breaks it",
        count=len(faces), where=where,
    )]


def check_text(shape):
    """OpenCASCADE's own check, its lines once each, without "No error"."""
    try:
        shape.check(True)
    except Exception as err:  # noqa: BLE001 - the check's text is the result
        lines = [line.strip() for line in str(err).splitlines()]
        seen = []
        for line in lines:
            if line and line != "No error" and line not in seen:
                seen.append(line)
        return "; ".join(seen)[:500]
    return ""


def notes(shape):
    """What is worth saying of a shape that is accepted, when it is several
    solids: solids that overlap without being fused, and solids that touch
    no other."""
    solids = shape.Solids
    if len(solids) < 2 or len(solids) > MAX_PIECES:
        return []
    apart = set(range(len(solids)))
    for i in range(len(solids)):
        for j in range(i + 1, len(solids)):
            try:
                touching = solids[i].distToShape(solids[j])[0] <= TOUCH_MM
            except Exception:  # noqa: BLE001 - an unmeasurable pair counts as apart
                touching = False
            if touching:
                apart.discard(i)
                apart.discard(j)
    found = overlapping(solids)
    if apart:
        found.append(defect(
            "pieces-apart",
            f"the result is {len(solids)} solids, {len(apart)} of them touching no other",
            "if it is meant to be one part, make the pieces overlap before fusing them "
            "(a fuse of solids that do not touch stays several solids)",
            count=len(apart), where=region([solids[i] for i in sorted(apart)]), severity=NOTE,
        ))
    return found


def overlapping(solids):
    """Solids of one result that overlap without having been fused (a
    compound where a fuse was meant): the volume counts the overlap twice."""
    pairs, shared, involved = 0, 0.0, set()
    for i in range(len(solids)):
        for j in range(i + 1, len(solids)):
            a, b = solids[i], solids[j]
            if not a.BoundBox.intersect(b.BoundBox):
                continue
            try:
                volume = a.common(b).Volume
            except Exception:  # noqa: BLE001 - a pair that cannot be intersected is left out
                continue
            if volume > 1e-6 * min(abs(a.Volume), abs(b.Volume)):
                pairs += 1
                shared += volume
                involved.update((i, j))
    if not pairs:
        return []
    return [defect(
        "overlapping",
        f"{len(involved)} of the {len(solids)} solids overlap ({pairs} pair(s), {shared:.6g} mm³ shared) "
        "without being fused: the volume counts the overlap twice",
        "a compound keeps solids as they are; to make one part of them, fuse them "
        "(`a.fuse(b)`, or `first.multiFuse(rest)`) and call `.removeSplitter()`",
        count=len(involved), where=region([solids[i] for i in sorted(involved)]), severity=NOTE,
    )]


def heal(shape):
    """The one exact repair: a closed, otherwise sound solid that is inside
    out is reversed (the volume's sign flips; nothing moves). Returns the
    shape to use and a note, or the shape as it is and None."""
    if shape.isNull() or not shape.Solids or shape.Volume >= 0:
        return shape, None
    if any(not s.isClosed() for s in shape.Shells):
        return shape, None
    healed = shape.reversed()
    if healed.Volume <= 0 or not healed.isValid():
        return shape, None
    note = defect(
        "inside-out",
        f"the solid was inside out (volume {shape.Volume:.6g} mm³); it was reversed, nothing moved",
        "build solids from closed profiles, or call `solid.reverse()` on one whose volume is negative",
        severity=NOTE,
    )
    note["healed"] = True
    return healed, note


def assignments(lines, name):
    """The lines that assign `name` (`name = …`, `name: T = …`), each as
    (line number, the value's text)."""
    pattern = re.compile(r"^\s*" + re.escape(name) + r"\s*(?::[^=]*)?=(?!=)\s*(.*)$")
    return [(n, m.group(1)) for n, text in enumerate(lines, 1) if (m := pattern.match(text))]


def open_wire_line(lines, names):
    """The line assigning a variable the code left holding an open wire, and
    the variable's name; None when there is none."""
    for name, value in names.items():
        if isinstance(value, Part.Wire) and not value.isNull() and not value.isClosed():
            assigned = assignments(lines, name)
            if assigned:
                return assigned[0][0], name
    return None


def point_at(found, lines, needles, what, last=False):
    """Points defect `found` at the first (or last) line holding one of
    `needles`, when there is one, and says so in its message."""
    hits = [n for n, text in enumerate(lines, 1) if any(k in text for k in needles)]
    if hits:
        found["line"] = hits[-1] if last else hits[0]
        found["message"] += f"; {what} at line {found['line']}"


def line_adding(lines, name):
    """The line that adds the document object `name` (`doc.addObject(TYPE,
    "name")`), or None."""
    pattern = re.compile(r"addObject\(\s*['\"][^'\"]+['\"]\s*,\s*['\"]" + re.escape(name) + r"['\"]")
    return next((n for n, text in enumerate(lines, 1) if pattern.search(text)), None)


def as_text(defects):
    """The defects as the error message lists them, one "- " line each."""
    return "\n".join(f"- {d['kind']}: {d['message']}. Fix: {d['hint']}" for d in defects)


# ------------------------------------------------------------ runtime errors


def runtime_defect(err, line, line_text, names):
    """The defect behind an error FreeCAD raised at `line` (`line_text`), or
    None when it is not one this knows. `names`: the variables of the code's
    frame, to measure the operands."""
    text = str(err)
    first = error_words(err)
    found = None
    operation = operation_on(line_text) if from_geometry(err) else None
    if "no suitable edges for chamfer or fillet" in text:
        found = ("edges-not-of-shape",
                 "the edges given to makeFillet/makeChamfer are not edges of that shape (or the list "
                 "is empty): take them from the same shape's `.Edges`, after its last boolean, and check "
                 "the filter that selects them matches something")
    elif operation is not None:
        found = operation_hint(operation, names)[:2]
    elif "command not done" in text:
        found = ("operation-failed",
                 "an OpenCASCADE operation failed on this line: check that its inputs are valid "
                 "solids (`shape.isValid()`) and its sizes are possible")
    elif "Failed to create face from wire" in text or "Wire is not closed" in text:
        found = ("face-of-open-wire",
                 "a face needs a closed wire: `Part.makePolygon` closes only when the last point repeats "
                 "the first, and a sketch's lines must meet end to end")
    elif "null shape" in text.lower():
        found = ("null-shape",
                 "an earlier step gave a null shape (a fuse with a wire, a failed feature, an empty "
                 "boolean): check each result with `shape.isNull()`")
    if found is None:
        return None
    kind, hint = found
    result = defect(kind, f"line {line}: {first}", hint)
    result["line"] = line
    return result


FILLETS = ("makeFillet", "makeChamfer")
BOOLEANS = ("cut", "fuse", "common", "section", "multiFuse")
REVOLVES = ("revolve",)


def freecad_message(err):
    """The message of FreeCAD's dict-shaped exceptions ({'sErrMsg': …}), or None."""
    if err.args and isinstance(err.args[0], dict) and err.args[0].get("sErrMsg"):
        return str(err.args[0]["sErrMsg"])
    return None


def error_words(err):
    """An exception's first line; FreeCAD's dict-shaped messages give their
    message alone."""
    message = freecad_message(err)
    if message is not None:
        return message
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def from_geometry(err):
    """Whether FreeCAD or OpenCASCADE raised `err` (not Python over the code's
    own mistake: a wrong name, attribute or argument type)."""
    name = type(err).__name__
    if name in ("NameError", "AttributeError", "TypeError", "SyntaxError", "ImportError",
                "ModuleNotFoundError", "IndexError", "KeyError", "ZeroDivisionError"):
        return False
    return True


def operation_on(line_text):
    """The fillet, chamfer, boolean or revolution called on a line:
    (receiver, method, arguments), or None."""
    return next(((r, m, a) for r, m, a in calls_on(line_text) if m in FILLETS + BOOLEANS + REVOLVES), None)


def operation_hint(operation, names):
    """The defect kind and hint for a fillet, boolean or revolution that
    failed, and whether the hint names a cause found in its inputs (a
    revolution's is general unless its profile crosses the axis)."""
    receiver, method, args = operation
    if method in FILLETS:
        return "fillet-failed", fillet_hint(method, receiver, args, names), True
    if method in REVOLVES:
        hint, crossing = revolve_hint(receiver, args, names)
        return "revolve-failed", hint, crossing
    return "boolean-failed", boolean_hint(method, receiver, args, names), True


def making_line(lines, names):
    """The line that made the result: the last assignment of `result` (or of
    what the last `Part.show(NAME)` shows), following plain renames such as
    `result = body`. (line, text), or None."""
    name = "result" if "result" in names else None
    if name is None:
        shown = [m.group(1) for text in lines for m in [re.search(r"Part\.show\(\s*([A-Za-z_]\w*)", text)] if m]
        name = shown[-1] if shown else None
    seen = set()
    while name is not None and name not in seen:
        seen.add(name)
        hits = assignments(lines, name)
        if not hits:
            return None
        line, value = hits[-1]
        renamed = re.fullmatch(r"([A-Za-z_]\w*)\s*(#.*)?", value.strip())
        if renamed is None:
            return line, lines[line - 1]
        name = renamed.group(1)
    return None


def making_operation(shape, lines, names):
    """When the result was made by a fillet, chamfer, boolean or revolution
    that returned a broken shape without raising, and its inputs say why:
    that operation as a defect, with its line; else None (an input that
    cannot be looked at, or was broken before, leaves the defect to where
    it was made)."""
    made = making_line(lines, names)
    if made is None:
        return None
    line, text = made
    operation = operation_on(text)
    if operation is None:
        return None
    receiver, method, args = operation
    operands = [value_of(receiver, names)]
    if method in BOOLEANS:
        operands += [value_of(a, names) for a in args[:1]]
    operands = [s for o in operands for s in (o if isinstance(o, (list, tuple)) else [o])]
    if not all(isinstance(s, Part.Shape) for s in operands):
        return None
    if any(not s.isNull() and s.Faces and not s.isValid() for s in operands):
        return None
    kind, hint, told = operation_hint(operation, names)
    if not told:
        return None
    what = ("a null shape" if shape.isNull() else "no solid" if not shape.Solids
            else "an invalid shape")
    found = defect(kind, f"`{operation[1]}` at line {line} gave {what}", hint)
    found["line"] = line
    return found


def revolve_hint(receiver, args, names):
    """Why a revolution failed (most often the profile crosses the axis),
    and whether the profile was found to cross it."""
    crossing = revolve_crossing(receiver, args, names)
    if crossing is None:
        return ("a revolved profile must be closed, lie in a plane with the axis and stay on one side "
                "of it (touching it at most): `face.revolve(base, direction, angle)`"), False
    low, high = crossing
    return (f"the profile crosses the axis of revolution: it reaches {low:.4g} mm on one side and "
            f"{high:.4g} mm on the other, so the revolved solid would pass through itself; "
            "keep the whole profile on one side of the axis (for a solid of revolution, draw "
            "half its section, from the axis outwards)"), True


def revolve_crossing(receiver, args, names):
    """How far a revolved profile reaches on either side of its axis, in its
    plane, when it reaches across it: (one side, other side) in mm; None when
    it does not or this cannot be told."""
    profile = value_of(receiver, names)
    base = value_of(args[0], names) if len(args) > 0 else None
    direction = value_of(args[1], names) if len(args) > 1 else None
    vector = type(FreeCAD.Vector())
    if not (isinstance(profile, Part.Shape) and isinstance(base, vector) and isinstance(direction, vector)):
        return None
    try:
        plane = profile.findPlane()
        if plane is None or direction.Length == 0:
            return None
        across = direction.cross(plane.Axis)
        if across.Length == 0:
            return None
        across.normalize()
        points = [p for e in profile.Edges for p in e.discretize(20)]
        sides = [(p - base).dot(across) for p in points]
    except Exception:  # noqa: BLE001 - the measurement is a best-effort detail
        return None
    size = max(profile.BoundBox.DiagonalLength, 1.0)
    low, high = min(sides), max(sides)
    if low < -1e-6 * size and high > 1e-6 * size:
        return -low, high
    return None


def fillet_hint(method, receiver, args, names):
    word = "fillet" if method == "makeFillet" else "chamfer"
    shape = value_of(receiver, names)
    size = value_of(args[0], names) if args else None
    parts = [f"the {word} could not be made"]
    if isinstance(size, (int, float)):
        parts[0] += f" with size {size:g} mm"
    if isinstance(shape, Part.Shape) and not shape.isNull() and shape.Edges:
        shortest = min(e.Length for e in shape.Edges)
        parts.append(f"the shortest edge of the shape is {shortest:.4g} mm")
        if isinstance(size, (int, float)) and size >= shortest / 2:
            parts.append(f"use a {word} smaller than half of it, or {word} fewer edges")
        else:
            parts.append(f"a {word} must be smaller than the faces next to the edges allow: "
                         f"try a smaller size, or {word} the edges one group at a time")
    else:
        parts.append(f"use a smaller {word}, or {word} fewer edges")
    return "; ".join(parts)


def boolean_hint(method, receiver, args, names):
    first = value_of(receiver, names)
    second = value_of(args[0], names) if args else None
    parts = [f"the boolean `{method}` failed"]
    if isinstance(second, (list, tuple)):
        if not second:
            parts.append("the list of tools is empty: give it at least one shape, or skip the "
                         "boolean when there is nothing to add or remove")
            return "; ".join(parts)
        bad = next((i for i, s in enumerate(second)
                    if not isinstance(s, Part.Shape) or s.isNull() or not s.Solids), None)
        second = second[bad] if bad is not None else None
        if bad is not None:
            parts.append(f"tool {bad} of the list is the first that is not a solid")
    operands = [("the shape", first), ("the tool", second)]
    for label, shape in operands:
        if isinstance(shape, Part.Shape):
            if shape.isNull():
                parts.append(f"{label} is a null shape")
            elif not shape.isValid():
                parts.append(f"{label} is not valid (check how it was built)")
            elif not shape.Solids:
                kind = shape.ShapeType
                article = "an" if kind[0] in "AEIOU" else "a"
                parts.append(f"{label} has no solid (it is {article} {kind}): a boolean needs "
                             "solids, so make it one (extrude a face, or use `Part.makeCylinder` "
                             "rather than `Part.makeCircle` for a hole)")
    if all(isinstance(s, Part.Shape) and not s.isNull() and s.Solids for _, s in operands):
        try:
            gap = first.distToShape(second)[0]
            parts.append("the operands touch" if gap <= TOUCH_MM else f"the operands are {gap:.4g} mm apart")
        except Exception:  # noqa: BLE001 - the distance is a best-effort detail
            pass
    parts.append("booleans need valid solids; faces that coincide exactly can fail, so let a tool "
                 "pass through by a small margin")
    return "; ".join(parts)


def calls_on(line_text):
    """The method calls on a line: (receiver node, method name, argument nodes)."""
    try:
        tree = ast.parse(line_text.strip())
    except SyntaxError:
        return []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            found.append((node.func.value, node.func.attr, node.args))
    return found


def value_of(node, names):
    """The value of a name, attribute chain, subscript by a constant or
    literal, looked up in `names`, or of a `Vector(x, y, z)` of such values;
    None for anything else (nothing of the code's is called)."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Call) and not node.keywords:
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if called == "Vector" and len(node.args) <= 3:
            values = [value_of(a, names) for a in node.args]
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                return FreeCAD.Vector(*values)
        return None
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = value_of(node.operand, names)
        return -inner if isinstance(inner, (int, float)) else None
    if isinstance(node, ast.Name):
        return names.get(node.id)
    if isinstance(node, ast.Attribute) and not node.attr.startswith("_"):
        base = value_of(node.value, names)
        try:
            return getattr(base, node.attr, None) if base is not None else None
        except Exception:  # noqa: BLE001 - a property that raises has no value here
            return None
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        base = value_of(node.value, names)
        try:
            return base[node.slice.value] if base is not None else None
        except Exception:  # noqa: BLE001 - an index out of range has no value here
            return None
    return None
