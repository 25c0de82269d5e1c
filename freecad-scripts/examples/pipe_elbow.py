# A 90 degree pipe elbow: 20 mm outside, 16 mm inside, bend radius 30 mm.
import FreeCAD as App
import Part

torus_outer = Part.makeTorus(30, 10, App.Vector(0, 0, 0), App.Vector(0, 0, 1), -180, 180, 90)
torus_inner = Part.makeTorus(30, 8, App.Vector(0, 0, 0), App.Vector(0, 0, 1), -180, 180, 90)
result = torus_outer.cut(torus_inner)
