"""cadloop's harness inside the embedded interpreter of a `cadloop worker`.

The worker (src/freecad.rs) imports this module once, after FreeCAD, and calls
`run_job` for every job. A job runs generated code in a fresh document and a
fresh namespace, finds the result shape, measures it, exports STEP and FCStd
into a staging folder and returns the tessellation as packed little-endian
arrays. Writing model.stl and moving the files into place is the worker's part.

Failures of the generated code are returned as data (kind + message for the
LLM), never raised: only a bug in this file raises. The job's parts live
in modules of their own: cadloop_job (the code's name, the error kinds),
cadloop_code (compile, the import check, run, describe a failure),
cadloop_params (the named parameters), cadloop_macro (what GUI macros
expect), cadloop_result (finding the result), cadloop_diagnose (what is
wrong with a shape or a failing line, and how to fix it), cadloop_measure
(facts, validity, tessellation) and cadloop_checks (the requirement checks).
"""

import json
import os
import sys
import time

import FreeCAD  # must come before Part: a bare `import Part` crashes the interpreter

import cadloop_checks
import cadloop_code
import cadloop_diagnose
import cadloop_macro
import cadloop_measure
import cadloop_parts
import cadloop_result
from cadloop_job import JobFailure

STAGING = ".staging"


def add_module_paths():
    """Puts FreeCAD's Python workbenches (PartDesign, Sketcher, Draft, BOPTools, …)
    and their helper packages on sys.path, as FreeCAD's own start-up does.
    The worker calls it once, before the first job."""
    resources = FreeCAD.getResourceDir()
    mods = os.path.join(resources, "Mod")
    paths = [os.path.join(resources, "Ext"), mods]
    if os.path.isdir(mods):
        paths += [os.path.join(mods, d) for d in sorted(os.listdir(mods))]
    for path in paths:
        if os.path.isdir(path) and path not in sys.path:
            sys.path.append(path)


def versions():
    """FreeCAD and Python versions, for the worker's ready message."""
    v = FreeCAD.Version()
    return json.dumps({"freecad": ".".join(v[:3]).rstrip("."), "python": sys.version.split()[0]})


def run_job(code, job_dir, checks_json="[]"):
    """Run one job; returns (report JSON, vertex bytes, index bytes). The
    checks (a JSON list of calls, see cadloop_checks) run on a shape that built.
    A refused shape's mesh comes back too, with its free edges in the report
    ("free_edges"), for views that show where it is open."""
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
    namespace = cadloop_code.fresh_namespace()
    cadloop_macro.enter(namespace, job_dir)
    parameters = []
    diagnosis = []
    try:
        compiled, parameters = cadloop_code.compile_code(code, lines)
        cadloop_code.run_code(compiled, namespace, lines)
        timings["exec_ms"] = ms_since(started)
        documents = [d for name, d in FreeCAD.listDocuments().items() if name not in docs_before]
        shape, source, parts = cadloop_result.resolve_result(documents, namespace, lines)
        cadloop_measure.refuse_null(shape, lines, namespace)
        facts = cadloop_measure.measure(shape)
        if facts["volume"] < 0:
            shape, healed = cadloop_diagnose.heal(shape)
            if healed is not None:
                # The document holds the shape as it was built; the model is the healed one.
                source = None
                diagnosis.append(healed)
                facts = cadloop_measure.measure(shape)
        measured = cadloop_parts.measure_each(parts, lines, namespace)
        cadloop_measure.check_shape(shape, facts, lines, namespace)
        if parts:
            facts["parts"], facts["pairs"], shared = cadloop_parts.facts(parts, measured)
            diagnosis += cadloop_parts.notes(parts, facts["parts"], facts["pairs"], shared,
                                             shape.BoundBox.DiagonalLength)
        elif facts["solids"] > 1:
            diagnosis += cadloop_diagnose.notes(shape)
        checks = json.loads(checks_json)
        if checks:
            mark = time.perf_counter()
            report_checks = run_checks(shape, checks, parts)
            timings["checks_ms"] = ms_since(mark)
        mark = time.perf_counter()
        step = os.path.join(staging, "model.step")
        assembly = None
        if parts:
            assembly, group = cadloop_parts.assembly_document(parts)
            cadloop_parts.export_step(group, step)
        else:
            shape.exportStep(step)
        cadloop_result.save_model_document(
            shape, source, documents, os.path.join(staging, "model.FCStd"), parts, assembly)
        vertices, indices, deflection = cadloop_measure.tessellate(shape, facts)
        facts["tessellation"] = {
            "deflection_mm": deflection,
            "triangles": len(indices) // 12,
        }
        if parts:
            # Each part's mesh follows the model's (the union's), for the
            # per-part files and the views' colours.
            more_vertices, more_indices, ranges = cadloop_parts.tessellate(
                parts, deflection, len(vertices) // 12, len(indices) // 12)
            vertices += more_vertices
            indices += more_indices
            for listed, mesh in zip(facts["parts"], ranges):
                listed["mesh"] = mesh
        timings["export_ms"] = ms_since(mark)
        report = {"outcome": "ok", "facts": facts}
    except JobFailure as failure:
        report = {"outcome": "error", "kind": failure.kind, "message": failure.message}
        if failure.line is not None:
            report["line"] = failure.line
        if failure.facts is not None:
            report["facts"] = failure.facts
        diagnosis += failure.diagnosis
        timings.setdefault("exec_ms", ms_since(started))
        if failure.shape is not None:
            vertices, indices, free_edges = refused_preview(failure.shape)
            if free_edges:
                report["free_edges"] = free_edges
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
    if diagnosis:
        report["diagnosis"] = diagnosis
    report["timings"] = timings
    return json.dumps(report), vertices, indices


def refused_preview(shape):
    """A refused shape's tessellation and free edges, for views that show
    what is wrong with it; nothing when it cannot be tessellated."""
    try:
        vertices, indices, _ = cadloop_measure.tessellate(shape, None)
        return vertices, indices, cadloop_diagnose.free_edge_lines(shape)
    except Exception:  # noqa: BLE001 - a preview is a help, never a failure
        return b"", b"", []


def run_checks(shape, checks, parts=()):
    """The checks' results, each with the call as written."""
    results = cadloop_checks.run_checks(shape, checks, {p.name: p.shape for p in parts})
    for check, outcome in zip(checks, results):
        outcome["call"] = check.get("call", check.get("name", ""))
    return results


def ms_since(start):
    return round((time.perf_counter() - start) * 1000.0, 3)
