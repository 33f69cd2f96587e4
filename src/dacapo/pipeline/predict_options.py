"""The options of a prediction (predict, validate, apply): `PredictOptions`.

One small object travels from the command line through validation or application to the
prediction, the post-processing and the evaluation, instead of a keyword argument per
option through every layer. ``None`` means the run config's value, resolved once per run
(`PredictOptions.for_run`).
"""

from __future__ import annotations

import attr

from dacapo.blockwise.options import BlockwiseOptions
from dacapo.errors import InputError
from dacapo.io.arrays import PADDINGS
from dacapo.pipeline.engines import check_options


@attr.s(frozen=True, kw_only=True)
class PredictOptions(BlockwiseOptions):
    """`BlockwiseOptions` (workers, worker command, log dir, task id, progress) and how the
    model runs: ``padding`` (the context beyond the raw: `dacapo.pipeline.predict`; None:
    the run's), ``engine`` and ``precision`` (`dacapo.pipeline.engines`)."""

    padding: str | None = attr.ib(default=None)
    engine: str = attr.ib(default="auto")
    precision: str = attr.ib(default="fp32")

    def check(self) -> None:
        """InputError naming the option that is not known (or does not mix)."""
        if self.padding is not None and self.padding not in PADDINGS:
            raise InputError(f"padding: must be one of {list(PADDINGS)}, got {self.padding!r}")
        check_options(self.engine, self.precision)

    def for_run(self, run_config) -> PredictOptions:
        """These options with every None that stands for the run config's value resolved:
        ``num_workers`` (`dacapo.blockwise.options.resolve_workers`) and ``padding``."""
        resolved = self.resolved(run_config.num_workers)
        return attr.evolve(resolved, padding=self.padding or run_config.padding)
