# The same block with a hole, built with document objects instead of shapes.
import FreeCAD as App

LENGTH = 40  # block length along X, mm
WIDTH = 20  # block width along Y, mm
HEIGHT = 10  # block height, mm
HOLE_D = 6  # through-hole diameter, mm

doc = App.ActiveDocument
box = doc.addObject("Part::Box", "Block")
box.Length, box.Width, box.Height = LENGTH, WIDTH, HEIGHT
hole = doc.addObject("Part::Cylinder", "Hole")
hole.Radius, hole.Height = HOLE_D / 2, HEIGHT
hole.Placement.Base = App.Vector(LENGTH / 2, WIDTH / 2, 0)
cut = doc.addObject("Part::Cut", "BlockWithHole")
cut.Base, cut.Tool = box, hole
doc.recompute()
