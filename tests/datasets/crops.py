"""Helpers of the crop-and-flip tests: every window an augmentation can give."""

import numpy as np


def windows(image, pad=2):
    """All crops of the zero-padded normalized image, and their flips.

    Yields `((dy, dx, flip), window)` where `(dy, dx)` is the crop offset into
    the padded image: the shift is `(dy - pad, dx - pad)`. The default pad of
    2 pixels a side is the official release's.
    """
    normalized = image.astype(np.float64) / 255.0 - 0.5
    padded = np.pad(normalized, [(pad, pad), (pad, pad), (0, 0)])
    h, w = image.shape[:2]
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            crop = padded[dy : dy + h, dx : dx + w]
            yield (dy, dx, False), crop
            yield (dy, dx, True), crop[:, ::-1]


def matching_windows(image, result, pad=2):
    """The `(dy, dx, flip)` of every window of `image` equal to `result`."""
    return [
        key
        for key, window in windows(image, pad)
        if np.allclose(result, window, atol=1e-6)
    ]
