"""Finding the result: the code's `result` (a shape, a document object, or a
mapping of named parts), else what FreeCAD's window would show, the visible
end products of every document the code made or used (several of them are
parts); and saving it as model.FCStd.
"""

import FreeCAD
import Part

import cadloop_diagnose
import cadloop_parts
from cadloop_job import EXCEPTION, NO_SOLID, JobFailure

def recompute_errors(doc, objects=None):
    """The objects that fail to recompute, each with its error in words."""
    doc.recompute()
    errors = []
    for obj in objects if objects is not None else doc.Objects:
        state = obj.State
        if "Invalid" in state or "Error" in state:
            status = obj.getStatusString() if hasattr(obj, "getStatusString") else "invalid"
            errors.append((obj, f"{obj.Label} ({obj.TypeId}): {status}"))
    return errors


def raise_recompute(failed, lines):
    """Refuses a document that does not recompute; `failed`: (object, error
    text) pairs. The line is where the code added the first failing object."""
    errors = [text for _, text in failed]
    line = next((n for n in (cadloop_diagnose.line_adding(lines, obj.Name) for obj, _ in failed) if n), None)
    open_wire = any("not closed" in e for e in errors)
    diagnosis = []
    if open_wire:
        found = cadloop_diagnose.defect(
            "open-sketch", "a feature's profile is an open wire: " + "; ".join(e for e in errors if "not closed" in e),
            "a profile or sketch must be closed to make a solid: its lines must meet end to end, and "
            "`Part.makePolygon` closes only when the last point repeats the first")
        if line is not None:
            found["line"] = line
            found["message"] += f"; the feature is added at line {line}"
        diagnosis.append(found)
    raise JobFailure(
        EXCEPTION,
        "FreeCAD could not recompute the document:\n  " + "\n  ".join(errors)
        + (f"\nThe first failing feature is added at line {line}." if line is not None else "")
        + "\nFix the parameters of these features (e.g. a fillet radius larger than the edge allows)."
        + "".join(f"\nFix: {d['hint']}" for d in diagnosis),
        line,
        diagnosis=diagnosis,
    )


def resolve_result(documents, namespace, lines):
    """The shape to export, the document it came from (None when the shape is
    the code's own `result` or a fusion of several objects), and its named
    parts (cadloop_parts; none for a single part)."""
    value = namespace.get("result")
    if isinstance(value, Part.Shape):
        return value, None, []
    if isinstance(getattr(value, "Shape", None), Part.Shape) and hasattr(value, "TypeId"):
        errors = recompute_errors(value.Document, [value] + list(getattr(value, "OutListRecursive", [])))
        if errors:
            raise_recompute(errors, lines)
        return value.Shape, value.Document, []
    errors = [e for d in documents for e in recompute_errors(d)]
    if errors:
        raise_recompute(errors, lines)
    if isinstance(value, dict):
        parts = cadloop_parts.from_mapping(value, namespace)
        return cadloop_parts.union(parts), None, parts
    # What FreeCAD's window would show: the visible end products of every
    # document the code made or used, whichever of them is active. A macro's
    # own `result` of another type (say, a count) does not hide them.
    leaves = [obj for d in documents for obj in result_objects(d)]
    if not leaves and "result" in namespace:
        raise JobFailure(
            NO_SOLID,
            f"`result` is a {type(value).__name__}; set it to a Part.Shape (e.g. a solid) or a document object with a Shape",
        )
    if not leaves:
        raise JobFailure(
            NO_SOLID,
            "the script left no solid: set `result` to the finished Part.Shape "
            "or add it to the document (e.g. Part.show(shape))",
        )
    if len(leaves) == 1:
        return leaves[0].Shape, leaves[0].Document, []
    parts = cadloop_parts.from_objects(leaves)
    union = cadloop_parts.union(parts)
    # Past MAX_PARTS the objects are one part: their union, not kept apart.
    return union, None, parts if len(leaves) <= cadloop_parts.MAX_PARTS else []


def has_solid(obj):
    shape = getattr(obj, "Shape", None)
    return isinstance(shape, Part.Shape) and not shape.isNull() and len(shape.Solids) > 0


def result_objects(doc):
    """Visible objects with solids that no other solid-bearing object consumes."""
    solid_objects = [o for o in doc.Objects if has_solid(o)]
    names = {o.Name for o in solid_objects}
    leaves = []
    for obj in solid_objects:
        if not getattr(obj, "Visibility", True):
            continue
        if any(user.Name in names for user in obj.InList):
            continue
        leaves.append(obj)
    return leaves


def save_model_document(shape, source, documents, path, parts=(), assembly=None):
    """model.FCStd: the document the result object lives in, with its history;
    for parts, the one document they all live in, else `assembly` (an object
    for each, cadloop_parts.assembly_document); for a shape, a document
    holding it as a `Result` feature."""
    if parts:
        homes = {p.source.Document.Name if p.source is not None else None for p in parts}
        source = parts[0].source.Document if None not in homes and len(homes) == 1 else assembly
    elif source is None:
        source = documents[0] if documents else FreeCAD.newDocument("cadloop_result")
        feature = source.addObject("Part::Feature", "Result")
        feature.Shape = shape
    source.saveCopy(path)
