# A box with 2 mm walls, open at the top, and its lid as a separate part
# resting on it: two named parts, each in its own colour.
import FreeCAD as App
import Part

LENGTH = 60  # box length along X, mm
WIDTH = 40  # box width along Y, mm
HEIGHT = 30  # box height without the lid, mm
WALL = 2  # wall and floor thickness, mm
LID_T = 3  # lid thickness, mm
LIP = 2  # depth of the lid's lip that fits inside the box, mm
GAP = 0.2  # clearance between the lip and the box's walls, mm

V = App.Vector
box = Part.makeBox(LENGTH, WIDTH, HEIGHT).cut(
    Part.makeBox(LENGTH - 2 * WALL, WIDTH - 2 * WALL, HEIGHT, V(WALL, WALL, WALL)))
plate = Part.makeBox(LENGTH, WIDTH, LID_T, V(0, 0, HEIGHT))
lip = Part.makeBox(LENGTH - 2 * (WALL + GAP), WIDTH - 2 * (WALL + GAP), LIP,
                   V(WALL + GAP, WALL + GAP, HEIGHT - LIP))
lid = plate.fuse(lip).removeSplitter()
result = {"box": box, "lid": lid}
COLORS = {"box": "#7f8c9d", "lid": "#c0392b"}
