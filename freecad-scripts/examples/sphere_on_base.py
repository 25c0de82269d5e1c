# A 30 mm ball sitting on a 40 x 40 x 5 mm square base.
import FreeCAD as App
import Part

base = Part.makeBox(40, 40, 5, App.Vector(-20, -20, 0))
ball = Part.makeSphere(15, App.Vector(0, 0, 18))
result = base.fuse(ball)
