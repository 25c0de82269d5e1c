# A square frame of 10 x 10 mm bars, 80 mm on the outside, 10 mm tall.
import Part
import FreeCAD as App

outer = Part.makeBox(80, 80, 10)
inner = Part.makeBox(60, 60, 10, App.Vector(10, 10, 0))
result = outer.cut(inner)
