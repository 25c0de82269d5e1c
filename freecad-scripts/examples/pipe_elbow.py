# A 90 degree pipe elbow: 20 mm outside, 16 mm inside, bend radius 30 mm.
import FreeCAD as App
import Part

OUTER_D = 20  # pipe outside diameter, mm
INNER_D = 16  # pipe inside diameter, mm
BEND_RADIUS = 30  # centreline bend radius, mm
ANGLE = 90  # bend angle, degrees

origin, axis = App.Vector(0, 0, 0), App.Vector(0, 0, 1)
torus_outer = Part.makeTorus(BEND_RADIUS, OUTER_D / 2, origin, axis, -180, 180, ANGLE)
torus_inner = Part.makeTorus(BEND_RADIUS, INNER_D / 2, origin, axis, -180, 180, ANGLE)
result = torus_outer.cut(torus_inner)
