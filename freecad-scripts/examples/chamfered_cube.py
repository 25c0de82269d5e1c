# A 25 mm cube with 3 mm chamfers on all edges.
import Part

cube = Part.makeBox(25, 25, 25)
result = cube.makeChamfer(3, cube.Edges)
