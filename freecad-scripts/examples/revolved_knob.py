# A knob revolved from a profile: 30 mm wide, 20 mm tall, with a 6 mm shaft hole 12 mm deep.
import FreeCAD as App
import Part

V = App.Vector
profile = Part.makePolygon([V(0, 0, 0), V(15, 0, 0), V(15, 0, 12), V(10, 0, 20), V(0, 0, 20), V(0, 0, 0)])
knob = Part.Face(profile).revolve(V(0, 0, 0), V(0, 0, 1), 360)
result = knob.cut(Part.makeCylinder(3, 12))
