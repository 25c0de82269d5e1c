# A stepped shaft: 20 mm diameter for 30 mm, 14 mm for 25 mm, 10 mm for 15 mm, along Z.
import FreeCAD as App
import Part

shaft = Part.makeCylinder(10, 30)
shaft = shaft.fuse(Part.makeCylinder(7, 25, App.Vector(0, 0, 30)))
shaft = shaft.fuse(Part.makeCylinder(5, 15, App.Vector(0, 0, 55)))
result = shaft.removeSplitter()
