# A butt hinge: two leaves whose knuckles turn on a pin, kept apart by a
# clearance. Three document objects, so three named parts; the pin's colour
# is set on its view, as in FreeCAD's GUI.
import FreeCAD as App
import Part

LEAF_W = 30  # width of each leaf from the pin axis, mm
LEAF_L = 40  # hinge length along the pin, mm
LEAF_T = 3  # leaf thickness, mm
KNUCKLE_D = 8  # knuckle outer diameter, mm
PIN_D = 4  # pin diameter, mm
CLEARANCE = 0.2  # radial clearance between the pin and the knuckles, mm

V = App.Vector
doc = App.newDocument("Hinge")
axis_z = KNUCKLE_D / 2


def leaf(side, y0):
    """A leaf on one side of the pin (side 1: +X, -1: -X), its knuckle from y0 over half the length."""
    x0 = 0 if side > 0 else -LEAF_W
    plate = Part.makeBox(LEAF_W, LEAF_L / 2, LEAF_T, V(x0, y0, 0))
    knuckle = Part.makeCylinder(KNUCKLE_D / 2, LEAF_L / 2, V(0, y0, axis_z), V(0, 1, 0))
    bore = Part.makeCylinder(PIN_D / 2 + CLEARANCE, LEAF_L + 2, V(0, -1, axis_z), V(0, 1, 0))
    return plate.fuse(knuckle).removeSplitter().cut(bore)


first = doc.addObject("Part::Feature", "LeafA")
first.Label = "leaf a"
first.Shape = leaf(1, 0)
second = doc.addObject("Part::Feature", "LeafB")
second.Label = "leaf b"
second.Shape = leaf(-1, LEAF_L / 2)
pin = doc.addObject("Part::Feature", "Pin")
pin.Label = "pin"
pin.Shape = Part.makeCylinder(PIN_D / 2, LEAF_L, V(0, 0, axis_z), V(0, 1, 0))
pin.ViewObject.ShapeColor = (0.85, 0.65, 0.13)
doc.recompute()
