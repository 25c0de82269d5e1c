# A 100 x 60 x 6 mm mounting plate with a 5 mm hole 8 mm in from each corner and a 30 x 20 mm slot.
import FreeCAD as App
import Part

LENGTH = 100  # plate length along X, mm
WIDTH = 60  # plate width along Y, mm
THICKNESS = 6  # mm
HOLE_D = 5  # corner hole diameter, mm
HOLE_INSET = 8  # hole centre from each edge, mm
SLOT_LENGTH = 30  # central slot along X, mm
SLOT_WIDTH = 20  # central slot along Y, mm

plate = Part.makeBox(LENGTH, WIDTH, THICKNESS)
for x in (HOLE_INSET, LENGTH - HOLE_INSET):
    for y in (HOLE_INSET, WIDTH - HOLE_INSET):
        plate = plate.cut(Part.makeCylinder(HOLE_D / 2, THICKNESS, App.Vector(x, y, 0)))
slot_corner = App.Vector((LENGTH - SLOT_LENGTH) / 2, (WIDTH - SLOT_WIDTH) / 2, 0)
plate = plate.cut(Part.makeBox(SLOT_LENGTH, SLOT_WIDTH, THICKNESS, slot_corner))
result = plate
