# A 25 mm cube with 3 mm chamfers on all edges.
import Part

SIDE = 25  # cube side, mm
CHAMFER = 3  # chamfer size, mm

cube = Part.makeBox(SIDE, SIDE, SIDE)
result = cube.makeChamfer(CHAMFER, cube.Edges)
