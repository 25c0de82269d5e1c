# A 40 x 20 x 10 mm block with a 6 mm hole through the middle.
import FreeCAD as App
import Part

block = Part.makeBox(40, 20, 10)
hole = Part.makeCylinder(3, 10, App.Vector(20, 10, 0))
result = block.cut(hole)
