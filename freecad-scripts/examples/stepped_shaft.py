# A stepped shaft: 20 mm diameter for 30 mm, 14 mm for 25 mm, 10 mm for 15 mm, along Z.
import FreeCAD as App
import Part

D1 = 20  # first step diameter, mm
L1 = 30  # first step length, mm
D2 = 14  # second step diameter, mm
L2 = 25  # second step length, mm
D3 = 10  # third step diameter, mm
L3 = 15  # third step length, mm

shaft = Part.makeCylinder(D1 / 2, L1)
shaft = shaft.fuse(Part.makeCylinder(D2 / 2, L2, App.Vector(0, 0, L1)))
shaft = shaft.fuse(Part.makeCylinder(D3 / 2, L3, App.Vector(0, 0, L1 + L2)))
result = shaft.removeSplitter()
