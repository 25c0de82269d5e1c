# A 40 x 40 x 8 mm plate with a 6 mm countersunk hole (90 degrees, 12 mm head) in the middle.
import FreeCAD as App
import Part

SIDE = 40  # square plate side, mm
THICKNESS = 8  # mm
HOLE_D = 6  # through-hole diameter, mm
HEAD_D = 12  # countersink diameter at the top, mm

plate = Part.makeBox(SIDE, SIDE, THICKNESS)
hole = Part.makeCylinder(HOLE_D / 2, THICKNESS, App.Vector(SIDE / 2, SIDE / 2, 0))
# 90 degrees: the cone narrows by its height on each side.
sink_depth = (HEAD_D - HOLE_D) / 2
sink = Part.makeCone(HOLE_D / 2, HEAD_D / 2, sink_depth, App.Vector(SIDE / 2, SIDE / 2, THICKNESS - sink_depth))
result = plate.cut(hole.fuse(sink))
