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
