"""How a run trains: batches, optimiser and augmentations (configs only; the code that
applies them is `dacapo.training.batches`, `dacapo.training.augment` and `dacapo.training.loop`)."""

from __future__ import annotations

import math

import attr
from funlib.geometry import Coordinate

from dacapo.io.config_yaml import register
from dacapo.ops.schedule import SCHEDULES
from dacapo.ops.sections import section_axes


@attr.s
class AugmentConfig:
    """Which augmentations the trainer applies, and how strongly."""

    mirror: bool = attr.ib(default=True, metadata={"help_text": "Random flips of each axis."})
    transpose: bool = attr.ib(
        default=True,
        metadata={"help_text": "Random permutations of axes with equal voxel size and extent."},
    )
    intensity_scale: float = attr.ib(
        default=0.1, metadata={"help_text": "raw * U(1-s, 1+s); 0 disables."}
    )
    intensity_shift: float = attr.ib(
        default=0.1, metadata={"help_text": "raw + U(-t, t); 0 disables."}
    )
    gamma: float = attr.ib(
        default=0.0, metadata={"help_text": "raw ** exp(U(-g, g)) on raw >= 0; 0 disables."}
    )
    noise: float = attr.ib(
        default=0.0, metadata={"help_text": "Gaussian noise with sigma ~ U(0, noise); 0 disables."}
    )
    elastic_magnitude: float = attr.ib(
        default=0.0,
        metadata={"help_text": "Std of the elastic displacement in world units; 0 disables."},
    )
    elastic_spacing: float = attr.ib(
        default=0.0,
        metadata={
            "help_text": "Control-point spacing of the elastic field (world units); "
            "0: 10 x the largest voxel size."
        },
    )

    rotate: bool = attr.ib(
        default=False,
        metadata={"help_text": "Random in-plane rotation by any angle (last two axes)."},
    )
    misalign_probability: float = attr.ib(
        default=0.0,
        metadata={"help_text": "Probability of a section misalignment (shift or slip), 3D."},
    )
    misalign_max: float = attr.ib(
        default=0.0, metadata={"help_text": "Largest misalignment per axis (world units)."}
    )
    section_intensity: float = attr.ib(
        default=0.0,
        metadata={"help_text": "Per-section raw * U(1-s, 1+s) + U(-s, s) (3D); 0 disables."},
    )
    blur: float = attr.ib(
        default=0.0,
        metadata={"help_text": "Largest in-plane Gaussian blur sigma (voxels), applied to "
                               "half of the crops; 0 disables."},
    )
    missing_sections: float = attr.ib(
        default=0.0, metadata={"help_text": "Probability per section of being zeroed (3D)."}
    )
    low_contrast_sections: float = attr.ib(
        default=0.0,
        metadata={"help_text": "Probability per section of 10x lower contrast (3D)."},
    )

    def problems(self) -> list[str]:
        out = []
        for name in ("misalign_max", "section_intensity", "blur"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0:
                out.append(f"trainer.augment.{name}: must be >= 0, got {value!r}")
        for name in ("misalign_probability", "missing_sections", "low_contrast_sections"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 <= value <= 1:
                out.append(f"trainer.augment.{name}: must lie in [0, 1], got {value!r}")
        for name in ("intensity_scale", "intensity_shift", "gamma", "noise", "elastic_magnitude",
                     "elastic_spacing"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0:
                out.append(f"trainer.augment.{name}: must be >= 0, got {value!r}")
        if isinstance(self.intensity_scale, (int, float)) and self.intensity_scale >= 1:
            out.append("trainer.augment.intensity_scale: must be < 1")
        return out

    @property
    def resamples(self) -> bool:
        """Whether crops are resampled (elastic, rotation or misalignment)."""
        return self.elastic_magnitude > 0 or self.rotate or (
            self.misalign_probability > 0 and self.misalign_max > 0)

    def elastic_margin(self, voxel_size: Coordinate, extent: Coordinate | None = None) -> Coordinate:
        """World-unit margin (per side, multiple of ``voxel_size``) read for the resampling
        of a crop of world ``extent`` (needed for ``rotate``): 3 elastic sigmas (none across
        sections, `dacapo.training.augment.section_axes`), the
        misalignment and, rotated, half the in-plane diagonal minus half the side."""
        dims = len(voxel_size)
        m = [3.0 * self.elastic_magnitude] * dims
        for axis in section_axes(voxel_size):  # no elastic displacement across sections
            m[axis] = 0.0
        if self.misalign_probability > 0 and dims == 3:
            for axis in (1, 2):
                m[axis] += self.misalign_max
        if self.rotate and extent is not None and dims >= 2:
            half_diag = math.hypot(extent[-1], extent[-2]) / 2
            for axis in (dims - 2, dims - 1):
                m[axis] += half_diag - extent[axis] / 2
        return Coordinate(int(math.ceil(v_m / v)) * v for v_m, v in zip(m, voxel_size))


@attr.s
class TrainerConfig:
    """How batches are made and the model is optimised."""

    batch_size: int = attr.ib(
        default=1,
        metadata={"help_text": "Crops per training batch. Data-parallel training shares "
                               "this global batch among its processes (their number must "
                               "divide it)."},
    )
    learning_rate: float = attr.ib(default=1e-4, metadata={"help_text": "Optimizer step size."})
    lr_schedule: str = attr.ib(
        default="constant",
        metadata={"help_text": "'constant', 'cosine' or 'poly' decay after the warm-up "
                               "(see dacapo.ops.schedule)."},
    )
    warmup_iterations: int = attr.ib(
        default=0, metadata={"help_text": "Iterations of linear learning-rate warm-up."}
    )
    final_lr_fraction: float = attr.ib(
        default=0.0, metadata={"help_text": "Learning rate at the end / learning_rate (decays)."}
    )
    optimizer: str = attr.ib(default="adam", metadata={"help_text": "'adam' or 'adamw'."})
    weight_decay: float = attr.ib(
        default=0.0, metadata={"help_text": "Weight decay (decoupled for adamw)."}
    )
    num_data_workers: int = attr.ib(
        default=1,
        metadata={"help_text": "Background processes preparing batches (0: in the main process)."},
    )
    torch_threads: int = attr.ib(
        default=0,
        metadata={"help_text": "Torch threads of the training process (0: torch's default, "
                               "all cores); cores minus num_data_workers is faster when "
                               "preparing a batch costs more than a model step."},
    )
    min_masked: float = attr.ib(
        default=0.0,
        metadata={"help_text": "Reject crops whose output region is less than this fraction "
                               "labelled (mask > 0 and inside the GT)."},
    )
    min_foreground: float = attr.ib(
        default=0.0,
        metadata={"help_text": "Reject crops whose output region has less than this fraction "
                               "of non-zero GT."},
    )
    precision: str = attr.ib(
        default="fp32",
        metadata={"help_text": "'fp32', 'bf16' or 'fp16': the model's forward pass under "
                               "torch.autocast in that precision (loss in fp32; fp16 with a "
                               "gradient scaler). bf16 also runs on CPUs."},
    )
    augment: AugmentConfig = attr.ib(
        factory=AugmentConfig, metadata={"help_text": "Augmentations (applied by dacapo.training.augment)."}
    )

    def problems(self) -> list[str]:
        out = []
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            out.append(f"trainer.batch_size: must be an integer >= 1, got {self.batch_size!r}")
        if not isinstance(self.learning_rate, (int, float)) or not self.learning_rate > 0:
            out.append(f"trainer.learning_rate: must be > 0, got {self.learning_rate!r}")
        if self.lr_schedule not in SCHEDULES:
            out.append(f"trainer.lr_schedule: must be one of {list(SCHEDULES)}, got {self.lr_schedule!r}")
        if not isinstance(self.warmup_iterations, int) or self.warmup_iterations < 0:
            out.append(f"trainer.warmup_iterations: must be an integer >= 0, got {self.warmup_iterations!r}")
        if not isinstance(self.final_lr_fraction, (int, float)) or not 0 <= self.final_lr_fraction <= 1:
            out.append(f"trainer.final_lr_fraction: must lie in [0, 1], got {self.final_lr_fraction!r}")
        if self.optimizer not in ("adam", "adamw"):
            out.append(f"trainer.optimizer: must be 'adam' or 'adamw', got {self.optimizer!r}")
        if not isinstance(self.weight_decay, (int, float)) or self.weight_decay < 0:
            out.append(f"trainer.weight_decay: must be >= 0, got {self.weight_decay!r}")
        if not isinstance(self.num_data_workers, int) or self.num_data_workers < 0:
            out.append(f"trainer.num_data_workers: must be >= 0, got {self.num_data_workers!r}")
        if not isinstance(self.torch_threads, int) or self.torch_threads < 0:
            out.append(f"trainer.torch_threads: must be >= 0, got {self.torch_threads!r}")
        if self.precision not in ("fp32", "bf16", "fp16"):
            out.append(f"trainer.precision: must be 'fp32', 'bf16' or 'fp16', got "
                       f"{self.precision!r}")
        for name in ("min_masked", "min_foreground"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not 0 <= v <= 1:
                out.append(f"trainer.{name}: must lie in [0, 1], got {v!r}")
        return out + self.augment.problems()


for _cls in (AugmentConfig, TrainerConfig):
    register(_cls)
