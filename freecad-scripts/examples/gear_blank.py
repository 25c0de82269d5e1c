# A spur gear blank with 12 simple square teeth: 40 mm root circle, 4 mm teeth, 10 mm thick, 8 mm bore.
import FreeCAD as App
import Part

teeth = []
for i in range(12):
    tooth = Part.makeBox(4, 5, 10, App.Vector(19, -2.5, 0))
    tooth.rotate(App.Vector(0, 0, 0), App.Vector(0, 0, 1), 360 / 12 * i)
    teeth.append(tooth)
gear = Part.makeCylinder(20, 10).fuse(teeth).removeSplitter()
result = gear.cut(Part.makeCylinder(4, 10))
