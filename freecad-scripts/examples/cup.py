# A cup: 60 mm across, 80 mm tall, 3 mm walls, 4 mm floor.
import FreeCAD as App
import Part

DIAMETER = 60  # outside diameter, mm
HEIGHT = 80  # mm
WALL = 3  # wall thickness, mm
FLOOR = 4  # floor thickness, mm

outer = Part.makeCylinder(DIAMETER / 2, HEIGHT)
inner = Part.makeCylinder(DIAMETER / 2 - WALL, HEIGHT - FLOOR, App.Vector(0, 0, FLOOR))
result = outer.cut(inner)
