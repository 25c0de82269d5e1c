# A loft from a 40 mm square at z = 0 to a 20 mm circle at z = 30.
import FreeCAD as App
import Part

V = App.Vector
square = Part.makePolygon([V(-20, -20, 0), V(20, -20, 0), V(20, 20, 0), V(-20, 20, 0), V(-20, -20, 0)])
circle = Part.Wire(Part.makeCircle(10, V(0, 0, 30)))
result = Part.makeLoft([square, circle], True)
