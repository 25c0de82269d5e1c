"""The generated code: compiled (refusing imports outside the allowed
modules), run in a fresh namespace, and, when it fails, described for the
LLM with the traceback cut to its own lines and a close name suggested.
"""

import ast
import builtins
import difflib
import errno
import os
import traceback

import FreeCAD
import Part

import cadloop_diagnose
import cadloop_macro
import cadloop_params
from cadloop_job import CODE_NAME, EXCEPTION, OUT_OF_MEMORY, SANDBOX, SYNTAX, JobFailure, source_line

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


def fresh_namespace():
    """The modules every FreeCAD script assumes are there; the code may import more."""
    return {
        "__name__": "__main__",
        "__file__": CODE_NAME,
        "__builtins__": builtins,
        "FreeCAD": FreeCAD,
        "App": FreeCAD,
        "Part": Part,
    }


def compile_code(code, lines):
    """The code compiled (macro calls rewritten) and its parameters."""
    try:
        tree = compile(code, CODE_NAME, "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
        check_imports(tree, lines)
        parameters = cadloop_params.read_parameters(tree, code)
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
        raise JobFailure(SYNTAX, message, lineno or None) from None
    except ValueError as err:  # e.g. a NUL byte in the source
        raise JobFailure(SYNTAX, f"{CODE_NAME}: {err}") from None


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
                    SANDBOX,
                    f"{CODE_NAME}, line {node.lineno}: {source_line(lines, node.lineno).strip()}\n"
                    f"module {module!r} is not allowed in generated code; use FreeCAD's API. "
                    f"Allowed modules: {', '.join(sorted(ALLOWED_IMPORTS))}.",
                    node.lineno,
                )


def run_code(compiled, namespace, lines):
    """Runs the code; whatever it raises becomes a JobFailure."""
    try:
        exec(compiled, namespace)
    except SystemExit as stop:
        if stop.code not in (None, 0):
            raise JobFailure(
                EXCEPTION,
                f"the script called sys.exit({stop.code!r}); a script must end normally and leave its solid in `result`",
            ) from None
    except MemoryError as err:
        message, line, _ = describe_exception(err, lines, namespace)
        raise JobFailure(
            OUT_OF_MEMORY,
            message + "\nThe script ran out of memory: build the part with fewer or simpler operations.",
            line,
        ) from None
    except OSError as err:
        message, line, defects = describe_exception(err, lines, namespace)
        if err.errno in (errno.EACCES, errno.EPERM):
            raise JobFailure(SANDBOX, message + "\n" + SANDBOX_HINT, line) from None
        raise JobFailure(EXCEPTION, message, line, diagnosis=defects) from None
    except BaseException as err:  # noqa: BLE001 - everything the code raises is data
        message, line, defects = describe_exception(err, lines, namespace)
        raise JobFailure(EXCEPTION, message, line, diagnosis=defects) from None


def describe_exception(err, lines, namespace):
    """The traceback cut to the generated code's own frames, its last line
    number, and the defect behind it when cadloop_diagnose knows it."""
    # The code's own frames, outermost first: each frame and its line.
    frames = [(f, n) for f, n in traceback.walk_tb(err.__traceback__) if f.f_code.co_filename == CODE_NAME]
    out = []
    if frames:
        out.append(f"Traceback ({CODE_NAME} frames, most recent call last):")
        for frame, lineno in frames:
            name = frame.f_code.co_name
            where = "" if name == "<module>" else f", in {name}"
            out.append(f"  {CODE_NAME}, line {lineno}{where}: {source_line(lines, lineno).strip()}")
    # FreeCAD's exceptions carry a dict; its message is what a reader needs.
    message = cadloop_diagnose.freecad_message(err)
    if message is not None:
        detail = f"{type(err).__name__}: {message}"
    else:
        detail = "".join(traceback.format_exception_only(type(err), err)).strip()
    hint = suggestion(err, namespace)
    out.append(detail + (f". Did you mean: {hint}?" if hint else ""))
    if not frames:
        return "\n".join(out), None, []
    last, at = frames[-1]
    names = {**namespace, **last.f_locals}
    found = cadloop_diagnose.runtime_defect(err, at, source_line(lines, at), names)
    if found is None:
        return "\n".join(out), at, []
    out.append(f"Likely cause at line {at}: {found['hint']}")
    return "\n".join(out), at, [found]


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
