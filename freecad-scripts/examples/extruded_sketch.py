# A rounded-slot plate: a 60 x 20 mm stadium outline extruded 5 mm.
import FreeCAD as App
import Part

V = App.Vector
edges = [
    Part.LineSegment(V(10, 0, 0), V(50, 0, 0)).toShape(),
    Part.Arc(V(50, 0, 0), V(60, 10, 0), V(50, 20, 0)).toShape(),
    Part.LineSegment(V(50, 20, 0), V(10, 20, 0)).toShape(),
    Part.Arc(V(10, 20, 0), V(0, 10, 0), V(10, 0, 0)).toShape(),
]
face = Part.Face(Part.Wire(edges))
result = face.extrude(V(0, 0, 5))
