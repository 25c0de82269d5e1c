# A flat washer: 24 mm outside, 10.5 mm inside, 2 mm thick.
import Part

outer = Part.makeCylinder(12, 2)
inner = Part.makeCylinder(5.25, 2)
result = outer.cut(inner)
