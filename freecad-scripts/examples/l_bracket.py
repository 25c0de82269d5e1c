# An L-bracket: two 50 x 30 x 5 mm legs at right angles, a 6 mm hole in each.
import FreeCAD as App
import Part

base = Part.makeBox(50, 30, 5)
upright = Part.makeBox(5, 30, 50)
bracket = base.fuse(upright).removeSplitter()
bracket = bracket.cut(Part.makeCylinder(3, 5, App.Vector(30, 15, 0)))
bracket = bracket.cut(Part.makeCylinder(3, 5, App.Vector(0, 15, 30), App.Vector(1, 0, 0)))
result = bracket
