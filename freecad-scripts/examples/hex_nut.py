# An M10 hex nut: 17 mm across flats, 8 mm thick, 10 mm hole.
import math
import FreeCAD as App
import Part

r = 17 / 2 / math.cos(math.pi / 6)
points = [App.Vector(r * math.cos(math.pi / 3 * i), r * math.sin(math.pi / 3 * i), 0) for i in range(7)]
hexagon = Part.Face(Part.makePolygon(points))
nut = hexagon.extrude(App.Vector(0, 0, 8))
result = nut.cut(Part.makeCylinder(5, 8))
