"""Measuring the result (the geometry facts), refusing what is not a valid
solid, and tessellating it for the mesh files.
"""

import array
import sys

import FreeCAD
import MeshPart

import cadloop_diagnose
from cadloop_job import INVALID_SHAPE, NO_SOLID, JobFailure

# A part is tessellated with a chord deviation of this share of its bounding-box
# diagonal, so that small and large parts get the same visual quality, and at
# most this angle between neighbouring facets on a curved face (about 17 degrees:
# a small hole still reads as round, and a helix sweep stays under a second).
RELATIVE_DEFLECTION = 0.001
MIN_DEFLECTION = 0.001
ANGULAR_DEFLECTION = 0.3


def measure(shape):
    """The geometry facts result.json gives. An empty shape has no bounding
    box: its corners are given as zeros."""
    solids = shape.Solids
    box = shape.BoundBox if shape.Vertexes else FreeCAD.BoundBox(0, 0, 0, 0, 0, 0)
    facts = {
        "valid": bool(shape.isValid()),
        "solids": len(solids),
        "shells": len(shape.Shells),
        "faces": len(shape.Faces),
        "edges": len(shape.Edges),
        "vertices": len(shape.Vertexes),
        "volume": shape.Volume,
        "area": shape.Area,
        "bbox": {
            "min": [box.XMin, box.YMin, box.ZMin],
            "max": [box.XMax, box.YMax, box.ZMax],
            "size": [box.XLength, box.YLength, box.ZLength],
        },
        "center_of_mass": center_of_mass(shape, solids),
        "face_types": face_types(shape),
    }
    return facts


def center_of_mass(shape, solids):
    weight = sum(s.Volume for s in solids)
    if solids and weight > 0:
        acc = FreeCAD.Vector(0, 0, 0)
        for solid in solids:
            acc += solid.CenterOfMass * solid.Volume
        acc = acc * (1.0 / weight)
        return [acc.x, acc.y, acc.z]
    box = shape.BoundBox
    return [box.Center.x, box.Center.y, box.Center.z]


def face_types(shape):
    counts = {}
    for face in shape.Faces:
        try:
            name = type(face.Surface).__name__
        except Exception:  # noqa: BLE001 - an unusual surface still counts
            name = "Other"
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))


def refuse_null(shape, lines, names=None):
    """Refuses a null shape (before anything measures it: it has nothing to
    measure), saying which line likely made it."""
    if shape.isNull():
        defects = cadloop_diagnose.diagnose(shape, lines, names)
        line = next((d["line"] for d in defects if "line" in d), None)
        raise JobFailure(NO_SOLID, "the result shape is empty (null):\n" + cadloop_diagnose.as_text(defects),
                         line=line, diagnosis=defects)


def check_shape(shape, facts, lines, names=None):
    """Refuses what is not one or more valid solids, saying what is wrong,
    where and how to fix it (cadloop_diagnose; `lines` and `names`: the
    code's lines and the variables it left, to point at the line that likely
    made the defect). `shape` is not null: `refuse_null` came first, before
    `facts` were measured."""
    if not facts["solids"] or not facts["valid"]:
        defects = [d for d in cadloop_diagnose.diagnose(shape, lines, names) if d["severity"] == cadloop_diagnose.ERROR]
    elif "Toroid" in facts["face_types"]:
        # A valid solid is diagnosed only for what OpenCASCADE lets through.
        defects = cadloop_diagnose.self_intersections(shape, lines)
    else:
        defects = []
    line = next((d["line"] for d in defects if "line" in d), None)
    if not facts["solids"]:
        raise JobFailure(
            NO_SOLID,
            f"the result has no solid, only {facts['faces']} faces in {facts['shells']} shells: "
            "extrude a closed profile, or close the shell and make a solid (Part.Solid(Part.Shell(faces)))"
            + ("\n" + cadloop_diagnose.as_text(defects) if defects else ""),
            line=line,
            facts=facts,
            diagnosis=defects,
            shape=shape,
        )
    if not facts["valid"] or defects:
        raise JobFailure(INVALID_SHAPE, "the result is not a valid solid:\n" + cadloop_diagnose.as_text(defects),
                         line=line, facts=facts, diagnosis=defects, shape=shape)
    if facts["volume"] <= 0:
        raise JobFailure(
            INVALID_SHAPE,
            f"the result has volume {facts['volume']:.6g} mm^3: the solid is inside out or flat; "
            "check face orientations and that every extrusion has a non-zero length",
            facts=facts,
            shape=shape,
        )


def tessellate(shape, facts):
    diagonal = shape.BoundBox.DiagonalLength
    deflection = max(diagonal * RELATIVE_DEFLECTION, MIN_DEFLECTION)
    vertices, indices, _, _ = mesh_bytes(shape, deflection)
    return vertices, indices, deflection


def mesh_bytes(shape, deflection, first_vertex=0):
    """`shape` tessellated with this chord deviation, as packed little-endian
    arrays (f32 xyz, u32 triangle indices counted from `first_vertex`), and
    how many vertices and triangles they hold."""
    mesh = MeshPart.meshFromShape(
        Shape=shape, LinearDeflection=deflection, AngularDeflection=ANGULAR_DEFLECTION, Relative=False
    )
    points, triangles = mesh.Topology
    flat = array.array("f")
    for p in points:
        flat.extend((p.x, p.y, p.z))
    idx = array.array("I")
    for tri in triangles:
        idx.extend(first_vertex + i for i in tri)
    if sys.byteorder != "little":
        flat.byteswap()
        idx.byteswap()
    return flat.tobytes(), idx.tobytes(), len(points), len(triangles)
