"""Per-class post-processor: each class segmented on its own, as a mask or as instances.

Class k (of C) is taken from the prediction by `dacapo.ops.class_segmentation.class_mask`
(argmax for exclusive one-hot classes, prior-corrected by the training ``class_fractions``
where a setting has ``prior`` τ > 0; ``prediction[channel_offset + k] > t`` for one channel
per class) and segmented by its `ClassSetting`: ``semantic`` (the mask),
``components`` (its face-connected components, objects under ``min_size`` voxels removed)
or ``watershed`` (distance-seeded watershed of ``prediction[channel_offset + k]``,
`dacapo.ops.distance_instances`).

The sweep is **zipped**, not a product: each class has its own list of settings, and
parameter set i uses the i-th setting of every class (a shorter list repeats its last).
Class k's output depends only on its own setting, so the best setting of each class is
chosen from its own criteria (``<class>__score``) and `compose` joins them into one
parameter set for `dacapo.pipeline.apply`.

Outputs: `process` (validation) writes one OME-NGFF label image of C channels, uint64
(channel k: class k's mask as 0/1 or its instance ids; no channel axis when C = 1);
`process_classes` (apply) writes one label image per class, ``<output>/<class name>``
(uint8 masks, uint64 instances). In memory for an in-memory prediction (a class whose
setting did not change since the previous parameter set is not recomputed); blockwise for
a zarr prediction: masks voxel-wise, instances by the stitched blockwise passes
(`dacapo.segment.stitching.run_stitched`: ids unique across blocks, objects joined over
block faces, ``min_size`` on whole objects), with a context of one voxel for components
and ``context`` (world units) for the watershed.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path

import numpy as np
from funlib.geometry import Coordinate
from funlib.persistence import Array

from dacapo.blockwise import BlockwiseOptions, run_blockwise
from dacapo.blockwise.grid import BlockGeometry
from dacapo.io.arrays import open_array, prepare_zarr, read_array
from dacapo.ops.class_segmentation import class_mask, connected_components, prior_weights
from dacapo.ops.distance_instances import distance_instances
from dacapo.ops.watershed import remove_small_fragments
from dacapo.segment.class_segments import components_block, semantic_block, stack_block
from dacapo.segment.seeded_instances import distance_instances_block
from dacapo.segment.stitching import run_stitched

from .per_class_post_processor_parameters import ClassSetting, PerClassPostProcessorParameters
from .post_processor import PostProcessor


class PerClassPostProcessor(PostProcessor):
    """Segments each of ``classes`` by its own sweep of `ClassSetting` s (module docstring)."""

    def __init__(self, classes: Sequence[str], sweeps: Mapping[str, Sequence[ClassSetting]],
                 channel_offset: int = 0, h: float | None = None, min_seed_distance: float = 0.0,
                 context: float = 0.0, class_fractions: Sequence[float] | None = None,
                 clip: tuple[float, float] = (0.0, 1.0)) -> None:
        self.classes = list(classes)
        missing = [c for c in self.classes if not sweeps.get(c)]
        if missing:
            raise ValueError(f"PerClassPostProcessor: no settings for class {missing[0]!r}")
        self.sweeps = {c: list(sweeps[c]) for c in self.classes}
        self.channel_offset = int(channel_offset)
        self.h = h
        self.min_seed_distance = float(min_seed_distance)
        self.context = float(context)
        self.class_fractions = None if class_fractions is None else list(class_fractions)
        self.clip = clip
        needs_prior = [c for c in self.classes if any(s.prior for s in self.sweeps[c])]
        if needs_prior and (self.class_fractions is None
                            or len(self.class_fractions) != len(self.classes)):
            raise ValueError(f"PerClassPostProcessor: class {needs_prior[0]!r} has a prior-"
                             f"corrected setting but no class_fractions for {len(self.classes)} "
                             "classes")
        self._cache: dict[int, tuple[ClassSetting, np.ndarray]] = {}

    def _prior(self, setting: ClassSetting):
        """The weights π of ``setting``'s prior-corrected argmax (None without one)."""
        if not setting.prior:
            return None
        return prior_weights(self.class_fractions, setting.prior, *self.clip)

    @property
    def instance_classes(self) -> list[str]:
        """Classes segmented into instances (by their first setting; a class keeps its kind)."""
        return [c for c in self.classes if self.sweeps[c][0].instance]

    def enumerate_parameters(self) -> Iterator[PerClassPostProcessorParameters]:
        for i in range(max(len(s) for s in self.sweeps.values())):
            yield PerClassPostProcessorParameters(
                id=i, settings=[(c, s[min(i, len(s) - 1)]) for c, s in self.sweeps.items()])

    def compose(self, chosen: Mapping[str, ClassSetting]) -> PerClassPostProcessorParameters:
        """The parameter set (id -1) that segments each class by ``chosen[class]``."""
        return PerClassPostProcessorParameters(id=-1, settings=[(c, chosen[c]) for c in self.classes])

    def set_prediction(self, prediction) -> None:
        super().set_prediction(prediction)
        self._cache = {}

    # ---- in memory ----------------------------------------------------------------------

    def _labels(self, data: np.ndarray, index: int, setting: ClassSetting,
                voxel_size: Coordinate) -> np.ndarray:
        """Class ``index``'s segmentation of the whole (channels-first) prediction."""
        cached = self._cache.get(index)
        if cached is not None and cached[0] == setting:
            return cached[1]
        if setting.kind == "watershed":
            labels = remove_small_fragments(distance_instances(
                data[self.channel_offset + index], tuple(voxel_size), setting.threshold,
                setting.seed_threshold, self.h, self.min_seed_distance), setting.min_size)
        else:
            mask = class_mask(data, index, setting.threshold, self.channel_offset,
                              self._prior(setting))
            labels = (connected_components(mask, setting.min_size) if setting.instance
                      else mask.astype(np.uint8))
        self._cache[index] = (setting, labels)
        return labels

    def _in_memory(self, prediction: Array) -> np.ndarray:
        data = read_array(prediction, prediction.roi)
        return data[None] if data.ndim == prediction.voxel_size.dims else data

    # ---- blockwise ----------------------------------------------------------------------

    def _class_job(self, index: int, setting: ClassSetting, path: str, prediction: Array,
                   block_size: Coordinate, options: BlockwiseOptions, work: Path,
                   job: str) -> None:
        """Class ``index``'s segmentation of the zarr prediction, blockwise, into ``path``
        (which exists)."""
        vs, roi = prediction.voxel_size, prediction.roi
        common = dict(index=index, threshold=setting.threshold, channel_offset=self.channel_offset,
                      prior=self._prior(setting))
        if not setting.instance:
            run_blockwise(partial(semantic_block, **common), inputs={"prediction": self.prediction},
                          output=path, block_size=block_size, context=None,
                          options=options.job(job, work))
            return
        if setting.kind == "components":
            context = vs
            function = partial(components_block, **common)
        else:
            context = Coordinate(math.ceil(self.context / v) * v for v in vs)
            function = partial(distance_instances_block, channel=self.channel_offset + index,
                               threshold=setting.threshold, seed_threshold=setting.seed_threshold,
                               h=self.h, min_seed_distance=self.min_seed_distance)
        geometry = BlockGeometry(roi, vs, block_size, context)
        stitched = work / job
        stitched.mkdir(parents=True, exist_ok=True)
        run_stitched([function], str(self.prediction), path, geometry, setting.min_size,
                     options, stitched)

    # ---- outputs ------------------------------------------------------------------------

    def process(self, parameters: PerClassPostProcessorParameters, output_array: str | Path,
                options: BlockwiseOptions | None = None, block_size=None) -> Array:
        """Every class's segmentation as the channels of one uint64 label image."""
        options = BlockwiseOptions() if options is None else options
        prediction = self._open_prediction()
        num = len(self.classes)
        block_size = self._block_size(block_size, prediction)
        out = self._label_output(output_array, prediction, block_size, num_channels=num)
        if isinstance(self.prediction, Array):
            data = self._in_memory(prediction)
            labels = np.stack([self._labels(data, k, parameters.setting(c), prediction.voxel_size)
                               for k, c in enumerate(self.classes)])
            out[prediction.roi] = labels if num > 1 else labels[0]
            del out
            return open_array(output_array, "output")
        del out
        work = Path(tempfile.mkdtemp(prefix=f"per_class_{parameters.id}_",
                                     dir=self._work_base(options.log_dir, output_array)))
        try:
            inputs = {}
            for k, c in enumerate(self.classes):
                path = str(work / "classes.zarr" / f"class_{k}")
                prepare_zarr(path, total_roi=prediction.roi, voxel_size=prediction.voxel_size,
                             dtype=np.uint64, write_size=block_size)
                self._class_job(k, parameters.setting(c), path, prediction, block_size, options,
                                work, f"class_{k}")
                inputs[f"class_{k}"] = path
            run_blockwise(stack_block, inputs=inputs, output=str(output_array), block_size=block_size,
                          context=None, options=options.job("stack", work))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return open_array(output_array, "output")

    def process_classes(self, parameters: PerClassPostProcessorParameters, output: str | Path,
                        options: BlockwiseOptions | None = None,
                        block_size=None) -> dict[str, Array]:
        """One OME-NGFF label image per class at ``<output>/<class>``: uint8 masks for
        semantic classes, uint64 ids (unique across blocks) for instance classes."""
        options = BlockwiseOptions() if options is None else options
        prediction = self._open_prediction()
        block_size = self._block_size(block_size, prediction)
        in_memory = isinstance(self.prediction, Array)
        data = self._in_memory(prediction) if in_memory else None
        work = None if in_memory else Path(tempfile.mkdtemp(
            prefix="per_class_", dir=self._work_base(options.log_dir, output)))
        written = {}
        try:
            for k, c in enumerate(self.classes):
                setting = parameters.setting(c)
                path = f"{output}/{c}"
                dtype = np.uint64 if setting.instance else np.uint8
                out = self._label_output(path, prediction, block_size, dtype)
                if data is not None:
                    out[prediction.roi] = self._labels(data, k, setting, prediction.voxel_size)
                else:
                    self._class_job(k, setting, path, prediction, block_size, options, work,
                                    f"class_{k}")
                del out
                written[c] = open_array(path, f"output {c}")
        finally:
            if work is not None:
                shutil.rmtree(work, ignore_errors=True)
        return written

