"""Which axes of a voxel size are the sections of an anisotropic stack.

A serial-section stack (ssTEM, FIB-SEM with thick slices, confocal with a coarse z step)
has axes whose voxel is at least `SECTION_RATIO` times the finest one; the planner plans
networks of sections for them and augmentation never displaces across them.
"""

from __future__ import annotations

#: axes whose voxel is at least this x the finest one are sections
SECTION_RATIO = 4.0
#: a 3D voxel size whose z is at least this x the finest in-plane one is anisotropic:
#: convolutions and pooling in-plane only (nnU-Net's rule, Isensee et al. 2021)
ANISOTROPY_RATIO = 2.0


def anisotropic(voxel_size) -> bool:
    """``voxel_size`` is 3D and its z voxel is at least `ANISOTROPY_RATIO` times the finest
    in-plane one."""
    return len(voxel_size) == 3 and voxel_size[0] >= ANISOTROPY_RATIO * min(voxel_size[1:])


def section_axes(voxel_size) -> list[int]:
    """Axes ``i`` with ``voxel_size[i] >= SECTION_RATIO * min(voxel_size)`` (none for
    isotropic data)."""
    finest = min(voxel_size)
    return [i for i, v in enumerate(voxel_size) if v >= SECTION_RATIO * finest]
