# A 30 mm ball sitting on a 40 x 40 x 5 mm square base.
import FreeCAD as App
import Part

BALL_D = 30  # mm
BASE_SIDE = 40  # square base side, mm
BASE_HEIGHT = 5  # mm
SINK = 2  # how far the ball sinks into the base, mm

base = Part.makeBox(BASE_SIDE, BASE_SIDE, BASE_HEIGHT, App.Vector(-BASE_SIDE / 2, -BASE_SIDE / 2, 0))
ball = Part.makeSphere(BALL_D / 2, App.Vector(0, 0, BASE_HEIGHT + BALL_D / 2 - SINK))
result = base.fuse(ball)
