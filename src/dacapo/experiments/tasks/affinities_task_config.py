"""Config of the affinities task (+ optional Local Shape Descriptors) for instances.

Two post-processors (``post_processor``): ``mutex_watershed`` (default; all offsets, a sweep
over ``mws_biases``, long-range channels optionally biased by ``mws_long_range_bias_offset``
more) and ``agglomeration`` (the LSD paper's fragments + waterz agglomeration on the
nearest-neighbour channels, a sweep over ``agglomeration_thresholds``).
"""

from __future__ import annotations

import attr
from funlib.geometry import Coordinate

from dacapo.ops.agglomeration import nearest_neighbour_channels

from .affinities_task import AffinitiesTask
from .post_processors.agglomeration_post_processor import DEFAULT_THRESHOLDS
from .task_config import GTRules, TaskConfig, check_clip_bounds, check_positive


def _neighborhood(values):
    return [Coordinate(v) for v in values] if values is not None else None


@attr.s
class AffinitiesTaskConfig(TaskConfig):
    """Predict voxel affinities for the offsets of ``neighborhood`` (and LSDs as an
    auxiliary target); segment instances with a mutex watershed over a bias sweep or with
    fragments + agglomeration over a threshold sweep (``post_processor``)."""

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

    post_processor: str = attr.ib(
        default="mutex_watershed",
        metadata={
            "help_text": "'mutex_watershed' (all offsets, bias sweep) or 'agglomeration' "
            "(seeded watershed fragments + waterz hierarchical agglomeration on the "
            "nearest-neighbour offsets, threshold sweep; needs (1,0,0),(0,1,0),(0,0,1) or "
            "their negatives in the neighborhood). Agglomeration is the LSD paper's pipeline; "
            "on corrupted FIB-SEM GT affinities it halves the mutex watershed's VOI or better "
            "(benchmarks/bench_agglomeration.py)."
        },
    )
    mws_biases: list[float] = attr.ib(
        factory=lambda: [0.1, 0.25, 0.5, 0.75, 0.9],
        converter=lambda v: [float(x) for x in v],
        metadata={
            "help_text": "Mutex watershed sweep: edge weight = affinity - bias (a higher bias "
            "splits more)."
        },
    )
    mws_long_range_bias_offset: float = attr.ib(
        default=0.0,
        converter=float,
        metadata={
            "help_text": "Added to the bias of the long-range channels (offsets longer than "
            "one voxel); > 0 makes long-range edges more repulsive. 0: one bias for all."
        },
    )
    agglomeration_thresholds: list[float] = attr.ib(
        factory=lambda: list(DEFAULT_THRESHOLDS),
        converter=lambda v: [float(x) for x in v],
        metadata={
            "help_text": "Agglomeration sweep: fragments merge while the merge score "
            "(1 - quantile of the contact affinities) is below the threshold (a higher "
            "threshold merges more). Default 0.025, 0.05, ..., 0.9 (segmentations go from "
            "split to merged at 0.2-0.5 on weak predictions, 0.5-0.8 on well trained ones)."
        },
    )
    agglomeration_quantile: int = attr.ib(
        default=75,
        metadata={
            "help_text": "Quantile (percent) of the affinities on a contact used as its merge "
            "affinity (waterz hist_quant; 10..95 in steps of 5 are precompiled)."
        },
    )
    fragments_seed_distance: int = attr.ib(
        default=10,
        metadata={
            "help_text": "Agglomeration fragments: seeds are maxima of the boundary distance "
            "transform in cubes of this many voxels (larger: fewer, bigger fragments)."
        },
    )
    agglomeration_db_url: str | None = attr.ib(
        default=None,
        metadata={
            "help_text": "Blockwise agglomeration graph database: None = an SQLite file in "
            "the work directory; or postgresql://user:password@host:port/database."
        },
    )

    def gt_rules(self) -> GTRules:
        """Instance ids (integers, one channel); offsets with one entry per data dim."""
        return GTRules(integer_labels=True,
                       neighborhood=tuple(tuple(int(v) for v in o) for o in self.neighborhood))

    def _problems(self) -> list[str]:
        problems = []
        if self.post_processor not in ("mutex_watershed", "agglomeration"):
            problems.append(f"post_processor: must be 'mutex_watershed' or 'agglomeration', "
                            f"got {self.post_processor!r}")
        for name in ("mws_biases", "agglomeration_thresholds"):
            values = getattr(self, name)
            if not values or len(set(values)) != len(values):
                problems.append(f"{name}: must be distinct numbers (at least one), got {values!r}")
        thresholds = self.agglomeration_thresholds
        if thresholds and not all(0 < t <= 1 for t in thresholds):
            problems.append(f"agglomeration_thresholds: must lie in (0, 1], got {thresholds!r}")
        q = self.agglomeration_quantile
        if not isinstance(q, int) or q not in range(10, 100, 5):
            problems.append(f"agglomeration_quantile: must be one of 10, 15, ..., 95 (waterz's "
                            f"precompiled ones), got {q!r}")
        if not isinstance(self.fragments_seed_distance, int) or self.fragments_seed_distance < 1:
            problems.append("fragments_seed_distance: must be an integer >= 1, got "
                            f"{self.fragments_seed_distance!r}")
        url = self.agglomeration_db_url
        if url is not None and not str(url).startswith(("postgresql://", "postgres://")):
            problems.append(f"agglomeration_db_url: must start with postgresql://, got {url!r}")
        if self.post_processor == "agglomeration" and self.neighborhood:
            try:
                nearest_neighbour_channels(self.neighborhood)
            except ValueError as e:
                problems.append(str(e))
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
