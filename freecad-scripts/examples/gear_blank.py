# A spur gear blank with 12 simple square teeth: 40 mm root circle, 4 mm teeth, 10 mm thick, 8 mm bore.
import FreeCAD as App
import Part

TEETH = 12  # number of teeth
ROOT_D = 40  # root circle diameter, mm
TOOTH_HEIGHT = 4  # radial tooth height, mm
TOOTH_WIDTH = 5  # tooth width, mm
THICKNESS = 10  # mm
BORE_D = 8  # mm

teeth = []
for i in range(TEETH):
    # Each tooth sinks 1 mm into the root circle so the fuse joins them.
    tooth = Part.makeBox(TOOTH_HEIGHT, TOOTH_WIDTH, THICKNESS, App.Vector(ROOT_D / 2 - 1, -TOOTH_WIDTH / 2, 0))
    tooth.rotate(App.Vector(0, 0, 0), App.Vector(0, 0, 1), 360 / TEETH * i)
    teeth.append(tooth)
gear = Part.makeCylinder(ROOT_D / 2, THICKNESS).fuse(teeth).removeSplitter()
result = gear.cut(Part.makeCylinder(BORE_D / 2, THICKNESS))
