# A 30 x 20 x 10 mm block with 2 mm fillets on its vertical edges and a 5 mm hole.
import FreeCAD as App
import Part

block = Part.makeBox(30, 20, 10)
vertical = [e for e in block.Edges if abs(e.tangentAt(e.FirstParameter).z) > 0.99]
block = block.makeFillet(2, vertical)
result = block.cut(Part.makeCylinder(2.5, 10, App.Vector(15, 10, 0)))
