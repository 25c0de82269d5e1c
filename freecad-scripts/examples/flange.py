# A round flange: 80 mm disc, 10 mm thick, 30 mm bore, six 8 mm bolt holes on a 60 mm circle.
import math
import FreeCAD as App
import Part

OUTER_D = 80  # flange diameter, mm
THICKNESS = 10  # mm
BORE_D = 30  # centre bore diameter, mm
BOLT_COUNT = 6  # bolt holes
BOLT_D = 8  # bolt hole diameter, mm
BOLT_CIRCLE_D = 60  # bolt circle diameter, mm

flange = Part.makeCylinder(OUTER_D / 2, THICKNESS).cut(Part.makeCylinder(BORE_D / 2, THICKNESS))
r = BOLT_CIRCLE_D / 2
for i in range(BOLT_COUNT):
    a = 2 * math.pi * i / BOLT_COUNT
    bolt = Part.makeCylinder(BOLT_D / 2, THICKNESS, App.Vector(r * math.cos(a), r * math.sin(a), 0))
    flange = flange.cut(bolt)
result = flange
