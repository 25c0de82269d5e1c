# A 30 x 20 x 10 mm block with 2 mm fillets on its vertical edges and a 5 mm hole.
import FreeCAD as App
import Part

LENGTH = 30  # block length along X, mm
WIDTH = 20  # block width along Y, mm
HEIGHT = 10  # block height, mm
FILLET = 2  # fillet radius on the vertical edges, mm
HOLE_D = 5  # through-hole diameter, mm

block = Part.makeBox(LENGTH, WIDTH, HEIGHT)
vertical = [e for e in block.Edges if abs(e.tangentAt(e.FirstParameter).z) > 0.99]
block = block.makeFillet(FILLET, vertical)
result = block.cut(Part.makeCylinder(HOLE_D / 2, HEIGHT, App.Vector(LENGTH / 2, WIDTH / 2, 0)))
