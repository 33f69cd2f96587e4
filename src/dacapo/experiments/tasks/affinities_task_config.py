"""Config of the affinities task (+ optional Local Shape Descriptors) for instances."""

from __future__ import annotations

import attr
from funlib.geometry import Coordinate

from .affinities_task import AffinitiesTask
from .task_config import GTRules, TaskConfig, check_clip_bounds, check_positive


def _neighborhood(values):
    return [Coordinate(v) for v in values] if values is not None else None


@attr.s
class AffinitiesTaskConfig(TaskConfig):
    """Predict voxel affinities for the offsets of ``neighborhood`` (and LSDs as an
    auxiliary target); segment instances with a mutex watershed over a bias sweep."""

    task_type = AffinitiesTask

    neighborhood: list[Coordinate] = attr.ib(
        converter=_neighborhood,
        metadata={
            "help_text": "Offsets (voxels) of the affinity channels, e.g. "
            "[(1,0,0),(0,1,0),(0,0,1)]; long-range offsets help the watershed."
        },
    )
    lsds: bool = attr.ib(
        default=False,
        metadata={"help_text": "Also learn Local Shape Descriptors (Sheridan et al. 2022)."},
    )
    num_lsd_voxels: int = attr.ib(
        default=10,
        metadata={"help_text": "LSD Gaussian sigma = num_lsd_voxels * max(voxel_size)."},
    )
    downsample_lsds: int = attr.ib(
        default=1, metadata={"help_text": "Compute LSDs on a grid subsampled by this factor."}
    )
    lsds_to_affs_weight_ratio: float = attr.ib(
        default=1, metadata={"help_text": "Weight of the LSD loss relative to the affinity loss."}
    )
    affs_weight_clipmin: float = attr.ib(
        default=0.05, metadata={"help_text": "Lower clip of affinity class fractions."}
    )
    affs_weight_clipmax: float = attr.ib(
        default=0.95, metadata={"help_text": "Upper clip of affinity class fractions."}
    )
    lsd_weight_clipmin: float = attr.ib(
        default=0.05, metadata={"help_text": "Lower clip of LSD fg/bg fractions."}
    )
    lsd_weight_clipmax: float = attr.ib(
        default=0.95, metadata={"help_text": "Upper clip of LSD fg/bg fractions."}
    )
    background_as_object: bool = attr.ib(
        default=False,
        metadata={"help_text": "Treat background (label 0) as one more object (bg-bg affinity 1)."},
    )
    min_fragment_sizes: list[int] = attr.ib(
        factory=lambda: [0, 100],
        converter=lambda v: [int(x) for x in v],
        metadata={
            "help_text": "Swept with the biases: fragments with fewer voxels than this are "
            "removed (set to 0) after the watershed; 0 keeps all. Removes the singleton "
            "fragments a mutex watershed leaves in predicted background."
        },
    )

    def gt_rules(self) -> GTRules:
        """Instance ids (integers, one channel); offsets with one entry per data dim."""
        return GTRules(integer_labels=True,
                       neighborhood=tuple(tuple(int(v) for v in o) for o in self.neighborhood))

    def _problems(self) -> list[str]:
        problems = []
        hood = self.neighborhood
        if not hood:
            problems.append("neighborhood: must not be empty")
        else:
            dims = {len(o) for o in hood}
            if len(dims) > 1:
                problems.append(f"neighborhood: offsets of mixed dimensionality {sorted(dims)}")
            elif dims.pop() not in (2, 3):
                problems.append("neighborhood: offsets must be 2D or 3D")
            for o in hood:
                if all(v == 0 for v in o):
                    problems.append(f"neighborhood: zero offset {tuple(o)}")
            dup = {tuple(o) for o in hood if [tuple(p) for p in hood].count(tuple(o)) > 1}
            if dup:
                problems.append(f"neighborhood: duplicate offsets {sorted(dup)}")
        if not isinstance(self.num_lsd_voxels, int) or self.num_lsd_voxels < 1:
            problems.append(f"num_lsd_voxels: must be an integer >= 1, got {self.num_lsd_voxels!r}")
        if not isinstance(self.downsample_lsds, int) or self.downsample_lsds < 1:
            problems.append(f"downsample_lsds: must be an integer >= 1, got {self.downsample_lsds!r}")
        sizes = self.min_fragment_sizes
        if not sizes or len(set(sizes)) != len(sizes) or min(sizes) < 0:
            problems.append(
                f"min_fragment_sizes: must be distinct integers >= 0 (at least one), got {sizes!r}"
            )
        problems += check_positive("lsds_to_affs_weight_ratio", self.lsds_to_affs_weight_ratio)
        problems += check_clip_bounds(
            "affs_weight_clipmin", self.affs_weight_clipmin, "affs_weight_clipmax", self.affs_weight_clipmax
        )
        problems += check_clip_bounds(
            "lsd_weight_clipmin", self.lsd_weight_clipmin, "lsd_weight_clipmax", self.lsd_weight_clipmax
        )
        return problems
