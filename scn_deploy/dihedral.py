"""The eight dihedral transforms of an image (flips and 90-degree rotations): the x8
self-ensemble at inference (the paper's SCN+) and the augmentation of training patches."""

from __future__ import annotations

import numpy as np

# As (rot90 k, flip) pairs.
DIHEDRAL: list[tuple[int, bool]] = [(k, flip) for flip in (False, True) for k in range(4)]


def dihedral(x: np.ndarray, k: int, flip: bool, axes: tuple[int, int] = (-2, -1)) -> np.ndarray:
    """Flip the second of `axes` (when `flip`), then rotate by k * 90 degrees over `axes`."""
    if flip:
        x = np.flip(x, axes[1])
    return np.rot90(x, k, axes=axes)


def dihedral_inverse(
    x: np.ndarray, k: int, flip: bool, axes: tuple[int, int] = (-2, -1)
) -> np.ndarray:
    """Undo `dihedral(x, k, flip, axes)`."""
    x = np.rot90(x, -k, axes=axes)
    return np.flip(x, axes[1]) if flip else x
