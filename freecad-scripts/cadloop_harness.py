"""cadloop's harness inside the embedded interpreter of a `cadloop worker`.

The worker (src/freecad.rs) imports this module once, after FreeCAD, and calls
`run_job` for every job. A job runs generated code in a fresh document and a
fresh namespace, finds the result shape, measures it, exports STEP and FCStd
into a staging folder and returns the tessellation as packed little-endian
arrays. Writing model.stl and moving the files into place is the worker's part.

Failures of the generated code are returned as data (kind + message for the
LLM), never raised: only a bug in this file raises.
"""

import array
import ast
import builtins
import difflib
import errno
import json
import math
import os
import re
import sys
import time
import traceback

import FreeCAD  # must come before Part: a bare `import Part` crashes the interpreter
import MeshPart
import Part

import cadloop_checks
import cadloop_macro

def add_module_paths():
    """Puts FreeCAD's Python workbenches (PartDesign, Sketcher, Draft, BOPTools, …)
    and their helper packages on sys.path, as FreeCAD's own start-up does."""
    resources = FreeCAD.getResourceDir()
    mods = os.path.join(resources, "Mod")
    paths = [os.path.join(resources, "Ext"), mods]
    if os.path.isdir(mods):
        paths += [os.path.join(mods, d) for d in sorted(os.listdir(mods))]
    for path in paths:
        if os.path.isdir(path) and path not in sys.path:
            sys.path.append(path)


add_module_paths()

CODE_NAME = "code.py"
STAGING = ".staging"
# A part is tessellated with a chord deviation of this share of its bounding-box
# diagonal, so that small and large parts get the same visual quality, and at
# most this angle between neighbouring facets on a curved face (about 17 degrees:
# a small hole still reads as round, and a helix sweep stays under a second).
RELATIVE_DEFLECTION = 0.001
MIN_DEFLECTION = 0.001
ANGULAR_DEFLECTION = 0.3


# Top-level modules generated code may import, from the supervisor's settings;
# an empty list turns the check off. The check gives the LLM an early, clear
# message; the OS-level sandbox holds whether or not code gets past it.
ALLOWED_IMPORTS = frozenset(m for m in os.environ.get("CADLOOP_ALLOWED_IMPORTS", "").split(",") if m)
SANDBOX_HINT = (
    "Generated code may only build geometry: it cannot read or write files outside its job folder, "
    "use the network or start processes. Build the part with FreeCAD's API and leave it in `result`; "
    "cadloop saves the model itself (model.step, model.stl, model.FCStd), so a line that saves or "
    "exports it can go."
)


class JobFailure(Exception):
    """A failure of the generated code, with the kind the executor reports."""

    def __init__(self, kind, message, line=None, facts=None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.line = line
        self.facts = facts


def versions():
    """FreeCAD and Python versions, for the worker's ready message."""
    v = FreeCAD.Version()
    return json.dumps({"freecad": ".".join(v[:3]).rstrip("."), "python": sys.version.split()[0]})


def run_job(code, job_dir, checks_json="[]"):
    """Run one job; returns (report JSON, vertex bytes, index bytes). The
    checks (a JSON list of calls, see cadloop_checks) run on a shape that built."""
    started = time.perf_counter()
    timings = {}
    # Macros saved on Windows start with a byte-order mark, which compile() refuses in a str.
    code = code.removeprefix("\ufeff")
    lines = code.splitlines()
    staging = os.path.join(job_dir, STAGING)
    os.makedirs(staging, exist_ok=True)
    docs_before = set(FreeCAD.listDocuments())
    doc = FreeCAD.newDocument("cadloop_job")
    FreeCAD.setActiveDocument(doc.Name)
    vertices = indices = b""
    report_checks = []
    namespace = fresh_namespace()
    cadloop_macro.enter(namespace, job_dir)
    parameters = []
    try:
        compiled, parameters = compile_code(code, lines)
        run_code(compiled, namespace, lines)
        timings["exec_ms"] = ms_since(started)
        documents = [d for name, d in FreeCAD.listDocuments().items() if name not in docs_before]
        shape, source = resolve_result(documents, namespace)
        facts = measure(shape)
        check_shape(shape, facts)
        checks = json.loads(checks_json)
        if checks:
            mark = time.perf_counter()
            report_checks = run_checks(shape, checks)
            timings["checks_ms"] = ms_since(mark)
        mark = time.perf_counter()
        shape.exportStep(os.path.join(staging, "model.step"))
        save_model_document(shape, source, documents, os.path.join(staging, "model.FCStd"))
        vertices, indices, deflection = tessellate(shape, facts)
        facts["tessellation"] = {
            "deflection_mm": deflection,
            "triangles": len(indices) // 12,
        }
        timings["export_ms"] = ms_since(mark)
        report = {"outcome": "ok", "facts": facts}
    except JobFailure as failure:
        report = {"outcome": "error", "kind": failure.kind, "message": failure.message}
        if failure.line is not None:
            report["line"] = failure.line
        if failure.facts is not None:
            report["facts"] = failure.facts
        timings.setdefault("exec_ms", ms_since(started))
    finally:
        ignored = cadloop_macro.leave()
        for name in set(FreeCAD.listDocuments()) - docs_before:
            FreeCAD.closeDocument(name)
        sys.stdout.flush()
        sys.stderr.flush()
    if ignored:
        report["ignored"] = ignored
    if parameters:
        report["parameters"] = parameters
    if report_checks:
        report["checks"] = report_checks
    report["timings"] = timings
    return json.dumps(report), vertices, indices


def run_checks(shape, checks):
    """The checks' results, each with the call as written."""
    results = cadloop_checks.run_checks(shape, checks)
    for check, outcome in zip(checks, results):
        outcome["call"] = check.get("call", check.get("name", ""))
    return results


def save_model_document(shape, source, documents, path):
    """model.FCStd: the document the result object lives in, with its history;
    for a shape, a document holding it as a `Result` feature."""
    if source is None:
        source = documents[0] if documents else FreeCAD.newDocument("cadloop_result")
        feature = source.addObject("Part::Feature", "Result")
        feature.Shape = shape
    source.saveCopy(path)


def ms_since(start):
    return round((time.perf_counter() - start) * 1000.0, 3)


def fresh_namespace():
    # The modules every FreeCAD script assumes are there; the code may import more.
    return {
        "__name__": "__main__",
        "__file__": CODE_NAME,
        "__builtins__": builtins,
        "FreeCAD": FreeCAD,
        "App": FreeCAD,
        "Part": Part,
    }


def compile_code(code, lines):
    try:
        tree = compile(code, CODE_NAME, "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
        check_imports(tree, lines)
        parameters = read_parameters(tree, code)
        return compile(cadloop_macro.rewrite(tree), CODE_NAME, "exec", dont_inherit=True), parameters
    except SyntaxError as err:
        lineno = err.lineno or 0
        text = source_line(lines, lineno) or (err.text or "").rstrip("\n")
        message = f"{CODE_NAME}, line {lineno}: {type(err).__name__}: {err.msg}"
        if text:
            message += f"\n    {text.strip()}"
            if err.offset:
                indent = len(text) - len(text.lstrip())
                message += "\n    " + " " * max(err.offset - 1 - indent, 0) + "^"
        raise JobFailure("syntax", message, lineno or None) from None
    except ValueError as err:  # e.g. a NUL byte in the source
        raise JobFailure("syntax", f"{CODE_NAME}: {err}") from None


# Python's own line breaks, as ast numbers lines.
LINE_BREAK = re.compile(r"\r\n|\r|\n")
# Integers JSON readers take exactly (cadloop reads them as 64-bit).
MAX_EXACT_INT = 2**53


def read_parameters(tree, code):
    """The script's parameters: the top-level assignments of number literals
    (optionally signed; `NAME = 40`, `NAME: float = 4.5`, `L, W = 40, 20`) at
    its start, before the first statement that is neither such an
    assignment, an import, nor the docstring. Each gives its name, value,
    kind, line, the literal's byte span in the line and the line's comment.
    A name assigned twice counts once, at its last assignment (the one in
    effect)."""
    lines = LINE_BREAK.split(code)
    found = {}
    for index, node in enumerate(tree.body):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if index == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) \
                and isinstance(node.value.value, str):
            continue
        parameters = parameters_of(node, lines)
        if parameters is None:
            break
        for parameter in parameters:
            found.pop(parameter["name"], None)
            found[parameter["name"]] = parameter
    return list(found.values())


def parameters_of(node, lines):
    """The parameters one statement assigns, or None when it is not an
    assignment of number literals to names."""
    if isinstance(node, ast.Assign) and len(node.targets) == 1:
        target, value = node.targets[0], node.value
    elif isinstance(node, ast.AnnAssign) and node.value is not None and node.simple:
        target, value = node.target, node.value
    else:
        return None
    if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple) \
            and len(target.elts) == len(value.elts):
        pairs = list(zip(target.elts, value.elts))
    else:
        pairs = [(target, value)]
    parameters = [parameter_of(name, literal, lines) for name, literal in pairs]
    return None if any(p is None for p in parameters) else parameters


def parameter_of(target, value, lines):
    """`NAME` given a number literal, as a parameter, else None."""
    if not isinstance(target, ast.Name):
        return None
    number = value
    sign = 1
    if isinstance(value, ast.UnaryOp) and isinstance(value.op, (ast.USub, ast.UAdd)):
        number = value.operand
        sign = -1 if isinstance(value.op, ast.USub) else 1
    if not isinstance(number, ast.Constant) or type(number.value) not in (int, float):
        return None
    literal = sign * number.value
    if isinstance(literal, int) and abs(literal) > MAX_EXACT_INT:
        return None
    if isinstance(literal, float) and not math.isfinite(literal):
        return None
    if value.lineno != value.end_lineno or value.lineno > len(lines):
        return None
    line = lines[value.lineno - 1].encode("utf-8")
    rest = line[value.end_col_offset:].decode("utf-8", "replace")
    comment = rest.split("#", 1)[1].strip() if "#" in rest else ""
    return {
        "name": target.id,
        "value": literal,
        "kind": "int" if isinstance(literal, int) else "float",
        "line": value.lineno,
        "span": [value.col_offset, value.end_col_offset],
        "text": line[value.col_offset:value.end_col_offset].decode("utf-8"),
        "comment": comment,
    }


def check_imports(tree, lines):
    """Refuses imports of modules outside ALLOWED_IMPORTS, naming the line."""
    if not ALLOWED_IMPORTS:
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = ["." * node.level + (node.module or "")]
        else:
            continue
        for module in modules:
            top = module.split(".")[0]
            if top not in ALLOWED_IMPORTS and not cadloop_macro.is_gui_module(module):
                raise JobFailure(
                    "sandbox",
                    f"{CODE_NAME}, line {node.lineno}: {source_line(lines, node.lineno).strip()}\n"
                    f"module {module!r} is not allowed in generated code; use FreeCAD's API. "
                    f"Allowed modules: {', '.join(sorted(ALLOWED_IMPORTS))}.",
                    node.lineno,
                )


def run_code(compiled, namespace, lines):
    try:
        exec(compiled, namespace)
    except SystemExit as stop:
        if stop.code not in (None, 0):
            raise JobFailure(
                "exception",
                f"the script called sys.exit({stop.code!r}); a script must end normally and leave its solid in `result`",
            ) from None
    except MemoryError as err:
        message, line = describe_exception(err, lines, namespace)
        raise JobFailure(
            "out-of-memory",
            message + "\nThe script ran out of memory: build the part with fewer or simpler operations.",
            line,
        ) from None
    except OSError as err:
        message, line = describe_exception(err, lines, namespace)
        if err.errno in (errno.EACCES, errno.EPERM):
            raise JobFailure("sandbox", message + "\n" + SANDBOX_HINT, line) from None
        raise JobFailure("exception", message, line) from None
    except BaseException as err:  # noqa: BLE001 - everything the code raises is data
        message, line = describe_exception(err, lines, namespace)
        raise JobFailure("exception", message, line) from None


def source_line(lines, lineno):
    if lineno and 0 < lineno <= len(lines):
        return lines[lineno - 1]
    return ""


def describe_exception(err, lines, namespace):
    """The traceback cut to the generated code's own frames, and its last line number."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename == CODE_NAME]
    out = []
    if frames:
        out.append(f"Traceback ({CODE_NAME} frames, most recent call last):")
        for frame in frames:
            where = "" if frame.name == "<module>" else f", in {frame.name}"
            out.append(f"  {CODE_NAME}, line {frame.lineno}{where}: {source_line(lines, frame.lineno).strip()}")
    detail = "".join(traceback.format_exception_only(type(err), err)).strip()
    hint = suggestion(err, namespace)
    out.append(detail + (f". Did you mean: {hint}?" if hint else ""))
    return "\n".join(out), (frames[-1].lineno if frames else None)


def suggestion(err, namespace):
    """A close name for a NameError or AttributeError, as newer Pythons print."""
    try:
        if isinstance(err, NameError) and getattr(err, "name", None):
            pool = list(namespace) + dir(builtins)
            name = err.name
        elif isinstance(err, AttributeError) and getattr(err, "name", None) and getattr(err, "obj", None) is not None:
            pool = dir(err.obj)
            name = err.name
        else:
            return None
    except Exception:  # noqa: BLE001 - a best-effort hint
        return None
    matches = difflib.get_close_matches(name, [p for p in pool if isinstance(p, str)], n=1, cutoff=0.7)
    return repr(matches[0]) if matches else None


def recompute_errors(doc, objects=None):
    doc.recompute()
    errors = []
    for obj in objects if objects is not None else doc.Objects:
        state = obj.State
        if "Invalid" in state or "Error" in state:
            status = obj.getStatusString() if hasattr(obj, "getStatusString") else "invalid"
            errors.append(f"{obj.Label} ({obj.TypeId}): {status}")
    return errors


def raise_recompute(errors):
    raise JobFailure(
        "exception",
        "FreeCAD could not recompute the document:\n  " + "\n  ".join(errors)
        + "\nFix the parameters of these features (e.g. a fillet radius larger than the edge allows).",
    )


def resolve_result(documents, namespace):
    """The shape to export, and the document object it came from (None when the
    shape is the code's own `result` or a fusion of several objects)."""
    value = namespace.get("result")
    if isinstance(value, Part.Shape):
        return value, None
    if isinstance(getattr(value, "Shape", None), Part.Shape) and hasattr(value, "TypeId"):
        errors = recompute_errors(value.Document, [value] + list(getattr(value, "OutListRecursive", [])))
        if errors:
            raise_recompute(errors)
        return value.Shape, value.Document
    errors = [e for d in documents for e in recompute_errors(d)]
    if errors:
        raise_recompute(errors)
    # What FreeCAD's window would show: the visible end products of every
    # document the code made or used, whichever of them is active. A macro's
    # own `result` of another type (say, a count) does not hide them.
    leaves = [obj for d in documents for obj in result_objects(d)]
    if not leaves and "result" in namespace:
        raise JobFailure(
            "no-solid",
            f"`result` is a {type(value).__name__}; set it to a Part.Shape (e.g. a solid) or a document object with a Shape",
        )
    if not leaves:
        raise JobFailure(
            "no-solid",
            "the script left no solid: set `result` to the finished Part.Shape "
            "or add it to the document (e.g. Part.show(shape))",
        )
    if len(leaves) == 1:
        return leaves[0].Shape, leaves[0].Document
    shapes = [o.Shape for o in leaves]
    try:
        union = shapes[0].fuse(shapes[1:])
        union = union.removeSplitter()
    except Exception:  # noqa: BLE001 - a failed fuse still leaves a usable compound
        union = Part.makeCompound(shapes)
    return union, None


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


def measure(shape):
    solids = shape.Solids
    box = shape.BoundBox
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


def check_shape(shape, facts):
    if shape.isNull():
        raise JobFailure("no-solid", "the result shape is empty (null)")
    if not facts["solids"]:
        raise JobFailure(
            "no-solid",
            f"the result has no solid, only {facts['faces']} faces in {facts['shells']} shells: "
            "extrude a closed profile, or close the shell and make a solid (Part.Solid(Part.Shell(faces)))",
            facts=facts,
        )
    if not facts["valid"]:
        raise JobFailure("invalid-shape", "the result is not a valid solid: " + shape_problems(shape), facts=facts)
    if facts["volume"] <= 0:
        raise JobFailure(
            "invalid-shape",
            f"the result has volume {facts['volume']:.6g} mm^3: the solid is inside out or flat; "
            "check face orientations and that every extrusion has a non-zero length",
            facts=facts,
        )


def shape_problems(shape):
    try:
        shape.check(True)
    except Exception as err:  # noqa: BLE001 - the check's text is the message
        text = str(err).strip()
        return text[:2000] if text else "the geometry check failed"
    return "the geometry check failed"


def tessellate(shape, facts):
    diagonal = shape.BoundBox.DiagonalLength
    deflection = max(diagonal * RELATIVE_DEFLECTION, MIN_DEFLECTION)
    mesh = MeshPart.meshFromShape(
        Shape=shape, LinearDeflection=deflection, AngularDeflection=ANGULAR_DEFLECTION, Relative=False
    )
    points, triangles = mesh.Topology
    flat = array.array("f")
    for p in points:
        flat.extend((p.x, p.y, p.z))
    idx = array.array("I")
    for tri in triangles:
        idx.extend(tri)
    if sys.byteorder != "little":
        flat.byteswap()
        idx.byteswap()
    return flat.tobytes(), idx.tobytes(), deflection
