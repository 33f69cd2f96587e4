"""Config of the one-hot (semantic classes) task."""

from __future__ import annotations

import attr

from .one_hot_task import OneHotTask
from .per_class_post_processing import (
    ONE_HOT_CLASS_THRESHOLDS,
    ONE_HOT_PRIOR_CORRECTIONS,
    check_per_class,
    instance_classes_field,
    instance_min_sizes_field,
)
from .task_config import (
    GTRules,
    TaskConfig,
    check_channels,
    check_clip_bounds,
    check_kernel_size,
    check_non_negative,
    check_number_list,
)


@attr.s
class OneHotTaskConfig(TaskConfig):
    """Predict a probability vector over ``classes`` per voxel (softmax in eval mode);
    the segmentation is the argmax class id. GT holds class ids 0..C-1."""

    task_type = OneHotTask

    classes: list[str] = attr.ib(
        metadata={"help_text": "Class names; GT value i means classes[i]."}
    )
    kernel_size: int | None = attr.ib(
        default=None,
        metadata={"help_text": "Kernel size of the head convolution (odd; default 1)."},
    )

    balance_classes: bool = attr.ib(
        default=True,
        metadata={"help_text": "Class-balanced weights 1 / (C * f_k) within the mask (default). "
                  "False: weight 1 within the mask (plain cross-entropy), so the softmax is "
                  "the unbiased class probability and the argmax the most likely class."},
    )
    clipmin: float = attr.ib(
        default=0.05,
        metadata={"help_text": "Lower clip of the class fractions f_k for balancing: a class "
                  "rarer than this weighs as if it had this fraction (lower it for rare "
                  "classes, e.g. 0.005 for synapses at 0.6 % of the voxels)."},
    )
    clipmax: float = attr.ib(
        default=0.95, metadata={"help_text": "Upper clip of the class fractions for balancing."}
    )
    dice_weight: float = attr.ib(
        default=0.0,
        metadata={"help_text": "Weight of a soft Dice term added to the cross-entropy "
                  "(nnU-Net's CE + batch Dice; partial annotations respected). 0: the "
                  "cross-entropy alone. dacapo plan sets 1 with balanced classes (organelles: "
                  "synapses +0.047 IoU on two seeds, docs/quality.md)."},
    )
    instance_classes: list[str] | None = instance_classes_field()
    instance_min_sizes: list[int] = instance_min_sizes_field()
    class_thresholds: list[float] = attr.ib(
        factory=lambda: list(ONE_HOT_CLASS_THRESHOLDS),
        metadata={"help_text": "With instance_classes: besides the argmax, each class's mask "
                  "may be its probability > t for t here, swept and chosen per class "
                  "(class-balanced training inflates a rare class's probability; a higher "
                  "threshold undoes it: mitochondria IoU +0.14 on held-out ssTEM, "
                  "docs/quality.md). [] = the argmax only."},
    )
    class_fractions: list[float] | None = attr.ib(
        default=None,
        metadata={"help_text": "Voxel fraction of each class in the training data, in class "
                  "order (dacapo plan fills it from the GT). With balance_classes and "
                  "instance_classes the sweep adds the prior-corrected argmax, argmax_k "
                  "clip(f_k)^tau * p_k for tau in prior_corrections: tau = 1 undoes the "
                  "balancing weights (post-hoc logit adjustment), which widen rare classes. "
                  "None: not swept."},
    )
    prior_corrections: list[float] = attr.ib(
        factory=lambda: list(ONE_HOT_PRIOR_CORRECTIONS),
        metadata={"help_text": "With class_fractions: the strengths tau of the prior-corrected "
                  "argmax swept per class (0 would be the plain argmax, always swept; 1 undoes "
                  "the balancing exactly; organelles on held-out ssTEM chose 1 to 1.5, "
                  "docs/quality.md)."},
    )

    def gt_rules(self) -> GTRules:
        """Class ids ``0..len(classes) - 1`` in one channel."""
        return GTRules(num_classes=len(self.classes), channel_names=self.classes)

    def _problems(self) -> list[str]:
        problems = check_channels("classes", self.classes) + check_kernel_size(
            "kernel_size", self.kernel_size
        )
        if self.classes is not None and len(self.classes) == 1:
            problems.append("classes: need at least 2 classes")
        return (problems + check_clip_bounds("clipmin", self.clipmin, "clipmax", self.clipmax)
                + check_per_class(self, "classes") + self._prior_problems()
                + check_number_list("class_thresholds", self.class_thresholds, 0, 1,
                                    allow_empty=True)
                + check_non_negative("dice_weight", self.dice_weight)
                + check_number_list("prior_corrections", self.prior_corrections, 0,
                                    allow_empty=True))

    def _prior_problems(self) -> list[str]:
        f = self.class_fractions
        if f is not None and (not isinstance(f, list | tuple) or len(f) != len(self.classes or [])
                              or not all(isinstance(v, int | float) and not isinstance(v, bool)
                                         and 0 <= v <= 1 for v in f)):
            return [f"class_fractions: must be one fraction in [0, 1] per class "
                    f"({len(self.classes or [])}), got {f!r}"]
        return []
