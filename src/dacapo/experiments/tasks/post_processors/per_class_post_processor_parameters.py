"""Parameters of the per-class post-processor: one setting per class.

A `ClassSetting` says how one class is segmented: ``kind`` ``"semantic"`` (its mask: the
argmax, or ``prediction > threshold``), ``"components"`` (connected components of that
mask, objects under ``min_size`` voxels removed) or ``"watershed"`` (distance-seeded
watershed: seeds above ``seed_threshold`` flood ``prediction > threshold``, then
``min_size``). ``threshold`` None means the argmax (exclusive classes), with ``prior`` τ > 0
the prior-corrected argmax ``argmax_j clip(f_j) ** τ · p_j`` over the training class
fractions f (`dacapo.ops.class_segmentation.class_mask`).
"""

from __future__ import annotations

import attr

from .post_processor_parameters import PostProcessorParameters

KINDS = ("semantic", "components", "watershed")


def _optional_float(value) -> float | None:
    return None if value is None else float(value)


@attr.s(frozen=True)
class ClassSetting:
    """How one class is segmented (see the module docstring)."""

    kind: str = attr.ib(validator=attr.validators.in_(KINDS))
    threshold: float | None = attr.ib(default=None, converter=_optional_float)
    seed_threshold: float | None = attr.ib(default=None, converter=_optional_float)
    min_size: int = attr.ib(default=0, converter=int)
    prior: float = attr.ib(default=0.0, converter=float)

    @prior.validator
    def _check_prior(self, attribute, value) -> None:
        if value < 0 or (value and self.threshold is not None):
            raise ValueError(f"ClassSetting: prior {value} needs threshold None and prior >= 0")

    @property
    def instance(self) -> bool:
        return self.kind != "semantic"

    @property
    def label(self) -> str:
        """Short text, e.g. ``components t=0.0 min_size=64``, ``argmax`` or ``argmax prior=1``."""
        parts = [self.kind if self.instance else ("argmax" if self.threshold is None else "mask")]
        if self.prior:
            parts.append(f"prior={self.prior:g}")
        if self.threshold is not None:
            parts.append(f"t={self.threshold:g}")
        if self.seed_threshold is not None:
            parts.append(f"seed={self.seed_threshold:g}")
        if self.instance:
            parts.append(f"min_size={self.min_size}")
        return " ".join(parts)


@attr.s(frozen=True)
class PerClassPostProcessorParameters(PostProcessorParameters):
    """One parameter set: ``settings`` holds ``(class name, ClassSetting)`` per class, in
    the task's class order. ``to_dict`` gives ``{type, id, <class>: <setting label>}``."""

    settings: tuple[tuple[str, ClassSetting], ...] = attr.ib(converter=tuple)

    def setting(self, name: str) -> ClassSetting:
        return dict(self.settings)[name]

    def to_dict(self) -> dict:
        return {"type": type(self).__name__, "id": self.id,
                **{name: s.label for name, s in self.settings}}

    def __str__(self) -> str:
        text = ", ".join(f"{name}: {s.label}" for name, s in self.settings)
        return f"{type(self).__name__}({text})"
