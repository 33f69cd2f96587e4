"""Base class of post-processing parameters: frozen, hashable, with an ``id``."""

from __future__ import annotations

import attr


@attr.s(frozen=True)
class PostProcessorParameters:
    """One point of a post-processor's parameter sweep.

    Subclasses add frozen attributes; ``str`` gives ``ClassName(id=.., a=..)`` and
    ``to_dict`` a plain dict for storing alongside scores.
    """

    id: int = attr.ib()

    def to_dict(self) -> dict:
        return {"type": type(self).__name__, **attr.asdict(self)}

    @property
    def parameter_names(self) -> list[str]:
        return [f.name for f in attr.fields(type(self)) if f.name != "id"]

    def __str__(self) -> str:
        values = ", ".join(f"{n}={getattr(self, n)}" for n in self.parameter_names)
        return f"{type(self).__name__}({values})"
