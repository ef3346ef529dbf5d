#!/usr/bin/env python3
# The coefficients of the AVX2 erf (native/cpu/vec_math_avx2.h): |x| in [0, 4) cut into 8
# intervals of width 1/2; on interval i, erf(x) = p_i(t), t = 2|x| - (i + 1/2) in [-1/2, 1/2),
# p_i of degree 6: the Chebyshev interpolant of erf in double, converted to powers of t and
# rounded to float. Prints the tables (one line per power, highest first, 8 intervals each) and
# the maximum absolute error of float Horner evaluation against math.erf on a dense grid.
# Needs numpy (Debian: python3-numpy). Run: /usr/bin/python3 scripts/erf_coefficients.py
import math

import numpy as np
from numpy.polynomial import chebyshev

DEG = 6
coef = []
for i in range(8):
    # s = 2t in [-1, 1]; a = |x| = (t + i + 1/2) / 2
    cs = chebyshev.chebinterpolate(lambda s: np.array([math.erf((v / 2 + i + 0.5) / 2) for v in np.atleast_1d(s)]), DEG)
    p = chebyshev.cheb2poly(cs) * (2.0 ** np.arange(DEG + 1))  # powers of s -> powers of t
    coef.append(np.float32(p))


def erf32(x):
    a = np.float32(min(abs(x), np.float32(3.99999976)))
    a2 = np.float32(a + a)
    i = int(a2)
    t = np.float32(a2 - np.float32(np.float32(i) + np.float32(0.5)))
    r = coef[i][DEG]
    for j in range(DEG - 1, -1, -1):
        r = np.float32(np.float64(r) * np.float64(t) + np.float64(coef[i][j]))  # an fma
    return math.copysign(float(r), x)


worst = max(abs(erf32(np.float32(x)) - math.erf(float(np.float32(x)))) for x in np.linspace(-6, 6, 240001))
for j in range(DEG, -1, -1):
    print(f't^{j}:', ', '.join('%.9ef' % coef[i][j] for i in range(8)))
print('max abs error', worst)
