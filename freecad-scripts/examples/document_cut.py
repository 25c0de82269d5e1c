# The same block with a hole, built with document objects instead of shapes.
import FreeCAD as App

doc = App.ActiveDocument
box = doc.addObject("Part::Box", "Block")
box.Length, box.Width, box.Height = 40, 20, 10
hole = doc.addObject("Part::Cylinder", "Hole")
hole.Radius, hole.Height = 3, 10
hole.Placement.Base = App.Vector(20, 10, 0)
cut = doc.addObject("Part::Cut", "BlockWithHole")
cut.Base, cut.Tool = box, hole
doc.recompute()
