"""`dacapo export` without the library's harmless warnings (issue 21 item 7): bioimageio.spec
warned 9 times per export ("Found mapping with 'source' and 'sha256' keys, but could not
parse it as a FileDescr") although the package is right; those are silenced at the export
call, by message, category and module, and every other warning still comes through."""

from __future__ import annotations

import warnings

import pytest

from dacapo.tools.export import bioimageio as export_module
from dacapo.tools.export.bioimageio import export_run, known_harmless_warnings
from dacapo.training.loop import train_run

pytest.importorskip("bioimageio.spec")

SPEC_MESSAGE = ("Found mapping with 'source' and `sha256' keys , but could not parse it as a "
                "FileDescr, evning when ignoring 'sha256'. Ignoring `source`: README.md.")


#: the categories Python shows by default (`warnings` filters: the others are ignored
#: outside ``__main__``)
HIDDEN = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


def _shown(caught) -> list[str]:
    return [str(w.message) for w in caught if not issubclass(w.category, HIDDEN)]


def _warn(message: str, module: str, category=UserWarning) -> None:
    warnings.warn_explicit(message, category, "io.py", 966, module=module)


def test_only_the_known_warning_is_silenced():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with known_harmless_warnings():
            _warn(SPEC_MESSAGE, "bioimageio.spec._internal.io")  # silenced
            _warn(SPEC_MESSAGE, "somewhere.else")  # same text, another module
            _warn("a real problem", "bioimageio.spec._internal.io")  # another message
            _warn(SPEC_MESSAGE, "bioimageio.spec._internal.io", DeprecationWarning)
        _warn(SPEC_MESSAGE, "bioimageio.spec._internal.io")  # after the block
    assert [(str(w.message)[:20], w.category) for w in caught] == [
        (SPEC_MESSAGE[:20], UserWarning), ("a real problem", UserWarning),
        (SPEC_MESSAGE[:20], DeprecationWarning), (SPEC_MESSAGE[:20], UserWarning)]


def test_export_warns_only_of_real_problems(tmp_path, tiny_data, tiny_run, monkeypatch):
    container = tiny_data(tmp_path)
    run = train_run(tiny_run(container, num_iterations=2, checkpoint_interval=2),
                    tmp_path / "runs", progress=False, validate=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        export_run(run.path, tmp_path / "a.zip")
    assert _shown(caught) == []  # were 9 UserWarnings of bioimageio.spec

    describe = export_module.describe_model

    def warning_describe(*args, **kwargs):
        warnings.warn("a real problem in the description", UserWarning, stacklevel=2)
        return describe(*args, **kwargs)

    monkeypatch.setattr(export_module, "describe_model", warning_describe)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        export_run(run.path, tmp_path / "b.zip")
    assert _shown(caught) == ["a real problem in the description"]
