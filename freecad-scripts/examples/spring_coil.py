# A coil spring: 20 mm coil diameter, 5 mm pitch, 4 turns, 2 mm wire.
import FreeCAD as App
import Part

COIL_D = 20  # coil diameter, mm
PITCH = 5  # rise per turn, mm
TURNS = 4  # turns
WIRE_D = 2  # wire diameter, mm

helix = Part.makeHelix(PITCH, PITCH * TURNS, COIL_D / 2)
circle = Part.makeCircle(WIRE_D / 2, App.Vector(COIL_D / 2, 0, 0), App.Vector(0, 1, 0))
result = Part.Wire(helix).makePipeShell([Part.Wire(circle)], True, True)
