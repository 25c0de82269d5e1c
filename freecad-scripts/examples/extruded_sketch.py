# A rounded-slot plate: a 60 x 20 mm stadium outline extruded 5 mm.
import FreeCAD as App
import Part

LENGTH = 60  # overall length, mm
WIDTH = 20  # width (the ends' diameter), mm
THICKNESS = 5  # mm

V = App.Vector
r = WIDTH / 2
edges = [
    Part.LineSegment(V(r, 0, 0), V(LENGTH - r, 0, 0)).toShape(),
    Part.Arc(V(LENGTH - r, 0, 0), V(LENGTH, r, 0), V(LENGTH - r, WIDTH, 0)).toShape(),
    Part.LineSegment(V(LENGTH - r, WIDTH, 0), V(r, WIDTH, 0)).toShape(),
    Part.Arc(V(r, WIDTH, 0), V(0, r, 0), V(r, 0, 0)).toShape(),
]
face = Part.Face(Part.Wire(edges))
result = face.extrude(V(0, 0, THICKNESS))
