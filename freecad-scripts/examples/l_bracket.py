# An L-bracket: two 50 x 30 x 5 mm legs at right angles, a 6 mm hole in each.
import FreeCAD as App
import Part

LEG = 50  # length of each leg, mm
WIDTH = 30  # bracket width along Y, mm
THICKNESS = 5  # leg thickness, mm
HOLE_D = 6  # hole diameter, mm
HOLE_AT = 30  # hole centre along each leg from the corner, mm

base = Part.makeBox(LEG, WIDTH, THICKNESS)
upright = Part.makeBox(THICKNESS, WIDTH, LEG)
bracket = base.fuse(upright).removeSplitter()
bracket = bracket.cut(Part.makeCylinder(HOLE_D / 2, THICKNESS, App.Vector(HOLE_AT, WIDTH / 2, 0)))
side_hole = Part.makeCylinder(HOLE_D / 2, THICKNESS, App.Vector(0, WIDTH / 2, HOLE_AT), App.Vector(1, 0, 0))
result = bracket.cut(side_hole)
