# A square frame of 10 x 10 mm bars, 80 mm on the outside, 10 mm tall.
import Part
import FreeCAD as App

OUTSIDE = 80  # outside side, mm
BAR = 10  # bar width, mm
HEIGHT = 10  # mm

outer = Part.makeBox(OUTSIDE, OUTSIDE, HEIGHT)
inner = Part.makeBox(OUTSIDE - 2 * BAR, OUTSIDE - 2 * BAR, HEIGHT, App.Vector(BAR, BAR, 0))
result = outer.cut(inner)
