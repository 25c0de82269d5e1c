# A loft from a 40 mm square at z = 0 to a 20 mm circle at z = 30.
import FreeCAD as App
import Part

SQUARE = 40  # square side at the bottom, mm
CIRCLE_D = 20  # circle diameter at the top, mm
HEIGHT = 30  # mm

V = App.Vector
h = SQUARE / 2
square = Part.makePolygon([V(-h, -h, 0), V(h, -h, 0), V(h, h, 0), V(-h, h, 0), V(-h, -h, 0)])
circle = Part.Wire(Part.makeCircle(CIRCLE_D / 2, V(0, 0, HEIGHT)))
result = Part.makeLoft([square, circle], True)
