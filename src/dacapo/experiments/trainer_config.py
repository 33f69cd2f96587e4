"""How a run trains: batches, optimiser and augmentations (configs only; the code that
applies them is `dacapo.batches`, `dacapo.augment` and `dacapo.train`)."""

from __future__ import annotations

import math

import attr
from funlib.geometry import Coordinate

from dacapo.store.converter import register


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

    def problems(self) -> list[str]:
        out = []
        for name in ("intensity_scale", "intensity_shift", "gamma", "noise", "elastic_magnitude",
                     "elastic_spacing"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0:
                out.append(f"trainer.augment.{name}: must be >= 0, got {value!r}")
        if isinstance(self.intensity_scale, (int, float)) and self.intensity_scale >= 1:
            out.append("trainer.augment.intensity_scale: must be < 1")
        return out

    def elastic_margin(self, voxel_size: Coordinate) -> Coordinate:
        """World-unit margin (per side, multiple of ``voxel_size``) read for elastic."""
        if self.elastic_magnitude <= 0:
            return Coordinate((0,) * len(voxel_size))
        m = 3 * self.elastic_magnitude
        return Coordinate(int(math.ceil(m / v)) * v for v in voxel_size)


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
        factory=AugmentConfig, metadata={"help_text": "Augmentations (applied by dacapo.augment)."}
    )

    def problems(self) -> list[str]:
        out = []
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            out.append(f"trainer.batch_size: must be an integer >= 1, got {self.batch_size!r}")
        if not isinstance(self.learning_rate, (int, float)) or not self.learning_rate > 0:
            out.append(f"trainer.learning_rate: must be > 0, got {self.learning_rate!r}")
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
