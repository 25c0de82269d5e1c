"""The script's named parameters: the number literals assigned at its head,
with where each stands, so `cadloop tweak` rewrites only the literals.
"""

import ast
import math
import re

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
    effect). An integer the script uses as a count (`range(N)`, an index, a
    repetition) says so in "count", which `cadloop tweak` keeps whole; any
    other number takes decimals."""
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
    counts = count_uses(tree)
    for name, parameter in found.items():
        if parameter["kind"] == "int" and name in counts:
            parameter["count"] = counts[name]
    return list(found.values())


def count_uses(tree):
    """The names the script uses where only a whole number works, each with
    its first such use in words: in `range(...)`, as an index, or repeating
    a list or text (`[x] * N`). A name inside a call (`int(L / P)`) is not
    counted: the call makes it whole."""
    uses = {}

    def note(expr, why):
        for name in arithmetic_names(expr):
            uses.setdefault(name, why)

    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range":
            for arg in node.args:
                note(arg, f"`range(...)` at line {node.lineno}")
        elif isinstance(node, ast.Subscript) and not isinstance(node.slice, ast.Slice):
            note(node.slice, f"an index at line {node.lineno}")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
            for seq, times in ((node.left, node.right), (node.right, node.left)):
                if isinstance(seq, (ast.List, ast.Tuple)) or (
                        isinstance(seq, ast.Constant) and isinstance(seq.value, str)):
                    note(times, f"a repetition at line {node.lineno}")
    return uses


def arithmetic_names(expr):
    """The names in `expr` through + - * // % and signs only."""
    if isinstance(expr, ast.Name):
        return [expr.id]
    if isinstance(expr, ast.UnaryOp):
        return arithmetic_names(expr.operand)
    if isinstance(expr, ast.BinOp) and not isinstance(expr.op, ast.Div):
        return arithmetic_names(expr.left) + arithmetic_names(expr.right)
    return []


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
