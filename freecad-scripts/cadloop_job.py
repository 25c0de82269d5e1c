"""What a job is, for every module of the worker's Python side: the name
the generated code runs under, the error kinds a failed job reports, and the
failure that carries one.

The kinds are the words of `ErrorKind` in src/executor/mod.rs; a test there
holds the two lists together. The supervisor adds the kinds no Python code
can report itself: "timeout" and "crashed".
"""

# The file name tracebacks and messages give the generated code.
CODE_NAME = "code.py"

# The error kinds a job reports.
SYNTAX = "syntax"
EXCEPTION = "exception"
NO_SOLID = "no-solid"
INVALID_SHAPE = "invalid-shape"
OUT_OF_MEMORY = "out-of-memory"
SANDBOX = "sandbox"
KINDS = (SYNTAX, EXCEPTION, NO_SOLID, INVALID_SHAPE, OUT_OF_MEMORY, SANDBOX)


class JobFailure(Exception):
    """A failure of the generated code, with the kind the executor reports."""

    def __init__(self, kind, message, line=None, facts=None, diagnosis=None, shape=None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.line = line
        self.facts = facts
        # What is wrong with the shape, as data (cadloop_diagnose's defects).
        self.diagnosis = diagnosis or []
        # The refused shape, when there is one to draw: its views show where
        # it is open.
        self.shape = shape


def source_line(lines, lineno):
    if lineno and 0 < lineno <= len(lines):
        return lines[lineno - 1]
    return ""
