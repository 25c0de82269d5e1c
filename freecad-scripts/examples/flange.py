# A round flange: 80 mm disc, 10 mm thick, 30 mm bore, six 8 mm bolt holes on a 60 mm circle.
import math
import FreeCAD as App
import Part

flange = Part.makeCylinder(40, 10).cut(Part.makeCylinder(15, 10))
for i in range(6):
    a = 2 * math.pi * i / 6
    flange = flange.cut(Part.makeCylinder(4, 10, App.Vector(30 * math.cos(a), 30 * math.sin(a), 0)))
result = flange
