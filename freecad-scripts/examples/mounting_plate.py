# A 100 x 60 x 6 mm mounting plate with a 5 mm hole 8 mm in from each corner and a 30 x 20 mm slot.
import FreeCAD as App
import Part

plate = Part.makeBox(100, 60, 6)
for x in (8, 92):
    for y in (8, 52):
        plate = plate.cut(Part.makeCylinder(2.5, 6, App.Vector(x, y, 0)))
plate = plate.cut(Part.makeBox(30, 20, 6, App.Vector(35, 20, 0)))
result = plate
