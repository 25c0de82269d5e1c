# A coil spring: 20 mm coil diameter, 5 mm pitch, 4 turns, 2 mm wire.
import FreeCAD as App
import Part

helix = Part.makeHelix(5, 20, 10)
circle = Part.makeCircle(1, App.Vector(10, 0, 0), App.Vector(0, 1, 0))
result = Part.Wire(helix).makePipeShell([Part.Wire(circle)], True, True)
