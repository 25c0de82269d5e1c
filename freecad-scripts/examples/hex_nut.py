# An M10 hex nut: 17 mm across flats, 8 mm thick, 10 mm hole.
import math
import FreeCAD as App
import Part

ACROSS_FLATS = 17  # mm
THICKNESS = 8  # mm
HOLE_D = 10  # mm

r = ACROSS_FLATS / 2 / math.cos(math.pi / 6)
points = [App.Vector(r * math.cos(math.pi / 3 * i), r * math.sin(math.pi / 3 * i), 0) for i in range(7)]
hexagon = Part.Face(Part.makePolygon(points))
nut = hexagon.extrude(App.Vector(0, 0, THICKNESS))
result = nut.cut(Part.makeCylinder(HOLE_D / 2, THICKNESS))
