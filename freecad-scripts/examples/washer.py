# A flat washer: 24 mm outside, 10.5 mm inside, 2 mm thick.
import Part

OUTER_D = 24  # outside diameter, mm
INNER_D = 10.5  # hole diameter, mm
THICKNESS = 2  # mm

outer = Part.makeCylinder(OUTER_D / 2, THICKNESS)
inner = Part.makeCylinder(INNER_D / 2, THICKNESS)
result = outer.cut(inner)
