# A knob revolved from a profile: 30 mm wide, 20 mm tall, with a 6 mm shaft hole 12 mm deep.
import FreeCAD as App
import Part

DIAMETER = 30  # mm
HEIGHT = 20  # mm
SIDE_HEIGHT = 12  # straight side before the taper, mm
TOP_D = 20  # diameter of the flat top, mm
SHAFT_D = 6  # shaft hole diameter, mm
SHAFT_DEPTH = 12  # mm

V = App.Vector
r, top = DIAMETER / 2, TOP_D / 2
profile = Part.makePolygon([V(0, 0, 0), V(r, 0, 0), V(r, 0, SIDE_HEIGHT), V(top, 0, HEIGHT), V(0, 0, HEIGHT), V(0, 0, 0)])
knob = Part.Face(profile).revolve(V(0, 0, 0), V(0, 0, 1), 360)
result = knob.cut(Part.makeCylinder(SHAFT_D / 2, SHAFT_DEPTH))
