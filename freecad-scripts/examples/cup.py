# A cup: 60 mm across, 80 mm tall, 3 mm walls, 4 mm floor.
import FreeCAD as App
import Part

outer = Part.makeCylinder(30, 80)
inner = Part.makeCylinder(27, 76, App.Vector(0, 0, 4))
result = outer.cut(inner)
