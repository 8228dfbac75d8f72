"""Comparing two float32 computations of the same maths, on any CPU.

Two compilations of one training step (a Python loop and a `lax.scan`,
TensorFlow and JAX, one device and two, one process and two) add in
different orders, and which orders depends on the instruction set (AVX2,
AVX-512) the compiler targets. Their results agree to float32 rounding
relative to the magnitudes added, not to a fixed number of decimals: a
batch-norm moving variance of 3 that differs by 8e-5 is as close as a bias
of 1e-3 that differs by 3e-8.
"""

import numpy as np

# About a thousand float32 ulps: a few steps of sums reassociated.
RTOL = 1e-4


def assert_float32_close(actual, expected, err_msg="", rtol=RTOL):
    """Asserts `actual` equals `expected` up to float32 accumulation.

    Elementwise `|actual - expected| <= rtol * |expected| + atol`, where
    `atol = rtol / 10 * max |expected|`: the rounding of an array's largest
    entries, so that the entries near zero of an array are held to its
    scale (no fixed threshold that depends on the array's units).

    Args:
        actual, expected: arrays (or scalars) of the same shape.
        err_msg: names what is compared, in the failure message.
        rtol: the relative tolerance.
    """
    expected = np.asarray(expected, np.float64)
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    np.testing.assert_allclose(
        np.asarray(actual, np.float64),
        expected,
        rtol=rtol,
        atol=rtol / 10 * scale,
        err_msg=err_msg,
    )
