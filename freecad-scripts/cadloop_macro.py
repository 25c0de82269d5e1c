"""What a FreeCAD macro expects from FreeCAD's GUI, for a headless worker.

LLMs learnt FreeCAD from macros recorded in the GUI, so the code they write
calls the GUI (`Gui.SendMsgToActiveView("ViewFit")`, `import FreeCADGui`,
`obj.ViewObject.ShapeColor = ...`) and saves or exports the model to paths
of its own. Headless, the first raise NameError, ImportError or
AttributeError and the model is lost; the second write outside the job.
The harness (`cadloop_harness.py`) uses this module so that such a macro
builds the same solid it builds in FreeCAD:

- `Gui` / `FreeCADGui` and every `...Gui` module are stand-ins whose
  attributes and calls do nothing and return a stand-in. What changes the
  model as the GUI shows it is honoured: visibility (`ViewObject.Visibility`,
  `hide()`, `show()`, `Gui.ActiveDocument.hide(name)`), colours
  (`ViewObject.ShapeColor`, a part's colour), and `ImportGui.export`
  exports as `Import.export` does.
- `obj.ViewObject`, None headless, is a stand-in view provider.
- Saves and exports (`doc.saveAs`, `shape.exportStep`, `Part.export`, ...)
  to paths inside the job folder happen; elsewhere they are skipped.

Every ignored GUI call and skipped write is noted with its line, for
result.json and the report page. The source is rewritten (same lines) only
to route `.ViewObject` reads and save/export calls through this module.
"""

import ast
import importlib.abc
import importlib.machinery
import os
import re
import sys
import types

import FreeCAD

from cadloop_job import CODE_NAME

# The names the rewritten code calls; they are put into its namespace.
VIEW_OBJECT_HOOK = "__cadloop_view_object__"
WRITER_HOOK = "__cadloop_writer__"
# Method names that may save or export a model (the receiver decides whether they do).
WRITE_METHODS = frozenset(
    ["save", "saveAs", "saveCopy", "export", "write", "exportStep", "exportStl", "exportIges", "exportBrep"]
)
WRITE_NOTE = "not written: cadloop saves the model itself (model.step, model.stl, model.FCStd); the line can go"
GUI_NOTE = "ignored: there is no GUI"
# At most this many notes a job (a GUI call in a loop notes one line once).
MAX_NOTES = 200


class Notes:
    """The GUI calls ignored and the writes skipped during one job, by line."""

    def __init__(self):
        self.entries = []

    def add(self, kind, call, detail):
        line = code_line()
        for entry in self.entries:
            if entry["kind"] != kind or entry["line"] != line:
                continue
            # A chained call (`Gui.activeDocument().activeView().viewAxometric()`)
            # notes each link; the line keeps the longest.
            if call.startswith(entry["call"]) or entry["call"].startswith(call):
                if len(call) > len(entry["call"]):
                    entry["call"] = call
                return
        if len(self.entries) < MAX_NOTES:
            self.entries.append({"kind": kind, "line": line, "call": call, "detail": detail})

    def as_list(self):
        return [{k: v for k, v in entry.items() if v is not None} for entry in self.entries]


def code_line():
    """The line of the generated code that is running now, if any."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_filename == CODE_NAME:
            return frame.f_lineno
        frame = frame.f_back
    return None


def note_gui(call):
    if RUNNING.job is not None:
        RUNNING.job.notes.add("gui", call, GUI_NOTE)


# ---------------------------------------------------------------- GUI stand-ins


class StandIn:
    """Anything the GUI would have: attributes and calls do nothing and give a stand-in."""

    __slots__ = ("_path",)

    def __init__(self, path):
        object.__setattr__(self, "_path", path)

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return StandIn(f"{self._path}.{name}")

    def __setattr__(self, name, value):
        note_gui(f"{self._path}.{name} = ...")

    def __delattr__(self, name):
        note_gui(f"del {self._path}.{name}")

    def __call__(self, *args, **kwargs):
        note_gui(f"{self._path}()")
        return StandIn(f"{self._path}()")

    def __getitem__(self, key):
        return StandIn(f"{self._path}[{key!r}]")

    def __setitem__(self, key, value):
        note_gui(f"{self._path}[{key!r}] = ...")

    def __iter__(self):
        return iter(())

    def __len__(self):
        return 0

    def __bool__(self):
        return True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __repr__(self):
        return f"<GUI stand-in {self._path}>"


# The view properties whose colour a part takes, and what they read before
# the code sets them (FreeCAD's default grey).
COLOR_PROPERTIES = ("ShapeColor", "DiffuseColor")
DEFAULT_COLOR = (0.8, 0.8, 0.8, 0.0)


class ViewProvider(StandIn):
    """A document object's view provider: visibility and colour are honoured, the rest ignored."""

    __slots__ = ("_object",)

    def __init__(self, obj):
        super().__init__(f"{obj.Name}.ViewObject")
        object.__setattr__(self, "_object", obj)

    def __getattr__(self, name):
        if name == "Visibility":
            return bool(self._object.Visibility)
        if name == "Object":
            return self._object
        if name == "hide":
            return lambda: setattr(self._object, "Visibility", False)
        if name == "show":
            return lambda: setattr(self._object, "Visibility", True)
        if name in COLOR_PROPERTIES and RUNNING.job is not None:
            return RUNNING.job.colors.get(self._object.Name, DEFAULT_COLOR)
        return super().__getattr__(name)

    def __setattr__(self, name, value):
        if name == "Visibility":
            self._object.Visibility = bool(value)
        elif name in COLOR_PROPERTIES and RUNNING.job is not None:
            # Kept as the part's colour (cadloop_parts); noted as ignored
            # when the result is not several parts.
            job = RUNNING.job
            job.colors[self._object.Name] = value
            if len(job.color_notes) < MAX_NOTES:
                job.color_notes.setdefault(self._object.Name, {
                    "kind": "gui", "line": code_line(), "call": f"{self._path}.{name} = ...",
                    "detail": "ignored: a colour is kept only for a result of several parts",
                })
        else:
            super().__setattr__(name, value)


class GuiDocument(StandIn):
    """A GUI document: its objects are view providers of the App document's objects."""

    __slots__ = ("_document",)

    def __init__(self, path, document):
        super().__init__(path)
        object.__setattr__(self, "_document", document)

    def __getattr__(self, name):
        if name == "Document":
            return self._document
        if name == "ActiveObject":
            obj = self._document.ActiveObject
            return ViewProvider(obj) if obj is not None else None
        if name == "getObject":
            return self.get_object
        if name == "hide":
            return lambda obj: set_object_visibility(obj, False, self._document)
        if name == "show":
            return lambda obj: set_object_visibility(obj, True, self._document)
        # `Gui.ActiveDocument.Box` is Box's view provider, as in FreeCAD.
        view = self.get_object(name) if not name.startswith("_") else None
        return view if view is not None else super().__getattr__(name)

    def get_object(self, name):
        obj = self._document.getObject(name)
        return ViewProvider(obj) if obj is not None else None


def gui_document(path, document):
    if document is None:
        return None
    return GuiDocument(path, document)


def find_document(ref):
    if isinstance(ref, str):
        return FreeCAD.listDocuments().get(ref) or next(
            (d for d in FreeCAD.listDocuments().values() if d.Label == ref), None
        )
    return ref if isinstance(ref, FreeCAD.Document) else None


def set_object_visibility(obj, visible, document=None):
    """Shows or hides an object, given itself or its name in `document`
    (default: the active one)."""
    if isinstance(obj, str):
        document = document or FreeCAD.ActiveDocument
        obj = document.getObject(obj) if document else None
    if obj is not None and hasattr(obj, "Visibility"):
        obj.Visibility = visible


class Selection(StandIn):
    """`Gui.Selection`: nothing is ever selected."""

    __slots__ = ()

    def __getattr__(self, name):
        if name in ("getSelection", "getSelectionEx", "getCompleteSelection", "getSelectionObject"):
            return lambda *args, **kwargs: []
        return super().__getattr__(name)


class GuiModule(types.ModuleType):
    """`FreeCADGui` (and `Gui`): a module, so every way of importing it works."""

    def __init__(self, name, path):
        super().__init__(name, "cadloop's headless stand-in for FreeCAD's GUI")
        types.ModuleType.__setattr__(self, "_path", path)

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        path = self.__dict__["_path"]
        if name == "ActiveDocument":
            return gui_document(f"{path}.ActiveDocument", FreeCAD.ActiveDocument)
        if name == "activeDocument":
            return lambda: gui_document(f"{path}.activeDocument()", FreeCAD.ActiveDocument)
        if name == "getDocument":
            return lambda ref: gui_document(f"{path}.getDocument()", find_document(ref)) or StandIn(
                f"{path}.getDocument()"
            )
        if name == "hideObject":
            return lambda obj: set_object_visibility(obj, False)
        if name == "showObject":
            return lambda obj: set_object_visibility(obj, True)
        if name == "Selection":
            return Selection(f"{path}.Selection")
        return getattr(StandIn(path), name)

    def __setattr__(self, name, value):
        if name.startswith("__") and name.endswith("__"):
            super().__setattr__(name, value)  # the import machinery's own attributes
        else:
            note_gui(f"{self.__dict__['_path']}.{name} = ...")


class ImportGuiModule(GuiModule):
    """`ImportGui`: exports and imports work as `Import`'s do (without colours)."""

    def __getattr__(self, name):
        if name in ("export", "insert", "open"):
            import Import

            return getattr(Import, name)
        return super().__getattr__(name)


def is_gui_module(name):
    top = name.split(".")[0]
    return top == "FreeCADGui" or (top.endswith("Gui") and top != "Gui")


class GuiFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves the stand-in for `FreeCADGui` and for every `...Gui` module."""

    def find_spec(self, fullname, path=None, target=None):
        if "." in fullname or not is_gui_module(fullname):
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec):
        if spec.name == "FreeCADGui":
            return GUI
        module_type = ImportGuiModule if spec.name == "ImportGui" else GuiModule
        return module_type(spec.name, spec.name)

    def exec_module(self, module):
        pass


GUI = GuiModule("FreeCADGui", "Gui")
FINDER = GuiFinder()


# A Windows path (`C:/Users/...`, `C:\...`, `\\server\share`) is outside the job wherever it points.
WINDOWS_PATH = re.compile(r"^([A-Za-z]:[\\/]|\\\\)")
class Job:
    """One job's state: its folder (saves and exports inside it happen), the
    notes it gathers, and the documents whose saveAs was skipped (a later
    doc.save() is skipped too)."""

    def __init__(self, job_dir):
        self.dir = os.path.realpath(job_dir)
        self.notes = Notes()
        self.unsaved = set()
        # Colours the code gave objects' views, by object name; the notes
        # for those no part took; the names of those a part took.
        self.colors = {}
        self.color_notes = {}
        self.colors_used = set()

    def inside(self, path):
        """Whether `path` (relative paths are taken from the working directory,
        which in a worker is the job folder) stays in the job folder."""
        text = os.fsdecode(os.fspath(path))
        if WINDOWS_PATH.match(text):
            return False
        target = os.path.realpath(os.path.abspath(os.path.expanduser(text)))
        return os.path.commonpath([self.dir, target]) == self.dir

    def writer(self, receiver, name):
        """The method `receiver.name`, guarded when it saves or exports a model."""
        method = getattr(receiver, name)
        if isinstance(receiver, FreeCAD.Document):
            if name in ("saveAs", "saveCopy"):
                return self.guarded(method, f"{receiver.Name}.{name}", 0, ("filename", "FileName"), receiver)
            if name == "save":
                return self.guarded_save(method, receiver)
            return method
        if isinstance(receiver, types.ModuleType) and name == "export":
            return self.guarded(method, f"{receiver.__name__}.export", 1, ("filename", "name"))
        if name.startswith("export") and is_shape(receiver):
            return self.guarded(method, f"shape.{name}", 0, ("filename", "Filename"))
        if name == "write" and is_mesh(receiver):
            return self.guarded(method, "mesh.write", 0, ("Filename", "filename"))
        return method

    def guarded(self, method, call, index, names, document=None):
        def call_or_skip(*args, **kwargs):
            path = path_argument(args, kwargs, index, names)
            if isinstance(path, (str, bytes, os.PathLike)) and not self.inside(path):
                self.notes.add("write", f"{call}({os.fspath(path)!r})", WRITE_NOTE)
                if document is not None:
                    self.unsaved.add(document.Name)
                return None
            return method(*args, **kwargs)

        return call_or_skip

    def guarded_save(self, method, document):
        def save_or_skip(*args, **kwargs):
            if not document.FileName and document.Name in self.unsaved:
                self.notes.add("write", f"{document.Name}.save()", WRITE_NOTE)
                return None
            if document.FileName and not self.inside(document.FileName):
                self.notes.add("write", f"{document.Name}.save() to {document.FileName!r}", WRITE_NOTE)
                return None
            return method(*args, **kwargs)

        return save_or_skip


class Running:
    """The job between `enter` and `leave`. The GUI stand-ins are shared by
    every job (generated code imports them), so their notes go to it."""

    job = None


RUNNING = Running()


def enter(namespace, job_dir):
    """Prepares a job: fresh notes, the GUI stand-ins importable, the hooks in `namespace`."""
    job = Job(job_dir)
    RUNNING.job = job
    for name in [n for n in sys.modules if is_gui_module(n)]:
        if not isinstance(sys.modules[name], GuiModule):
            del sys.modules[name]
    sys.modules["FreeCADGui"] = GUI
    if FINDER not in sys.meta_path:
        sys.meta_path.insert(0, FINDER)
    namespace["Gui"] = GUI
    namespace["FreeCADGui"] = GUI
    namespace[VIEW_OBJECT_HOOK] = view_object
    namespace[WRITER_HOOK] = job.writer


def leave():
    """Ends a job and gives its notes: FreeCAD's own modules see no stand-in between jobs."""
    if FINDER in sys.meta_path:
        sys.meta_path.remove(FINDER)
    for name in [n for n in sys.modules if isinstance(sys.modules[n], GuiModule)]:
        del sys.modules[name]
    job, RUNNING.job = RUNNING.job, None
    if job is None:
        return []
    unused = [note for name, note in job.color_notes.items() if name not in job.colors_used]
    return job.notes.as_list() + [{k: v for k, v in n.items() if v is not None} for n in unused]


# ---------------------------------------------------------------- view objects and writes


def view_object(obj):
    """`obj.ViewObject`: FreeCAD's when there is one, else a stand-in view provider."""
    view = obj.ViewObject
    if view is None and hasattr(obj, "TypeId") and hasattr(obj, "Name"):
        return ViewProvider(obj)
    return view


def path_argument(args, kwargs, index, names):
    if len(args) > index:
        return args[index]
    for name in names:
        if name in kwargs:
            return kwargs[name]
    return None


def is_shape(value):
    import Part

    return isinstance(value, Part.Shape)


def is_mesh(value):
    mesh_module = sys.modules.get("Mesh")
    return mesh_module is not None and isinstance(value, mesh_module.Mesh)


class Rewriter(ast.NodeTransformer):
    """Routes `.ViewObject` reads and save/export calls through this module; lines stay."""

    def visit_Attribute(self, node):
        self.generic_visit(node)
        if node.attr == "ViewObject" and isinstance(node.ctx, ast.Load):
            hook = ast.Call(func=ast.Name(VIEW_OBJECT_HOOK, ast.Load()), args=[node.value], keywords=[])
            return ast.copy_location(hook, node)
        return node

    def visit_Call(self, node):
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in WRITE_METHODS and isinstance(func.ctx, ast.Load):
            receiver = self.visit(func.value)
            lookup = ast.Call(
                func=ast.Name(WRITER_HOOK, ast.Load()),
                args=[receiver, ast.Constant(func.attr)],
                keywords=[],
            )
            node.func = ast.copy_location(lookup, func)
            node.args = [self.visit(a) for a in node.args]
            node.keywords = [self.visit(k) for k in node.keywords]
            return node
        self.generic_visit(node)
        return node


def rewrite(tree):
    tree = Rewriter().visit(tree)
    ast.fix_missing_locations(tree)
    return tree

