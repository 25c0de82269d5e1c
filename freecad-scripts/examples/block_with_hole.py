# A 40 x 20 x 10 mm block with a 6 mm hole through the middle.
import FreeCAD as App
import Part

LENGTH = 40  # block length along X, mm
WIDTH = 20  # block width along Y, mm
HEIGHT = 10  # block height, mm
HOLE_D = 6  # through-hole diameter, mm

block = Part.makeBox(LENGTH, WIDTH, HEIGHT)
hole = Part.makeCylinder(HOLE_D / 2, HEIGHT, App.Vector(LENGTH / 2, WIDTH / 2, 0))
result = block.cut(hole)
