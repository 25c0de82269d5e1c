# A 40 x 40 x 8 mm plate with a 6 mm countersunk hole (90 degrees, 12 mm head) in the middle.
import FreeCAD as App
import Part

plate = Part.makeBox(40, 40, 8)
hole = Part.makeCylinder(3, 8, App.Vector(20, 20, 0))
sink = Part.makeCone(3, 6, 3, App.Vector(20, 20, 5))
result = plate.cut(hole.fuse(sink))
