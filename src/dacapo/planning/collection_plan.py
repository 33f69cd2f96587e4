"""``dacapo plan COLLECTION``: a run planned for a collection of images (`dacapo.io.collection`).

Every labelled image is a training dataset of its own (images of different sizes are fine:
the network's output fits the smallest, `dacapo.planning.rules.plan_architecture`), so no
batch and no prediction block ever holds voxels of two images. Validation: the ``validate``
datasets given (an image of the collection named there is not trained on); with none given
and at least two labelled images, the **last labelled image by name** is held out (for
time-lapse frames named by time, the one farthest from most others); with one labelled
image the run has no validation. Unlabelled images are not used (apply the run to them).
"""

from __future__ import annotations

from pathlib import Path

from dacapo.errors import InputError
from dacapo.experiments.datasplits import as_dataset_name
from dacapo.io.collection import collection_images
from dacapo.planning.planner import plan_run

__all__ = ["collection_datasets", "plan_collection"]


def _same(a: str, b: str) -> bool:
    return Path(a).resolve() == Path(b).resolve()


def collection_datasets(path: str, validate=None):
    """(GT paths, raw paths, validation datasets (name, raw, gt), note) of the collection
    ``path`` by the rules of the module docstring."""
    images = collection_images(path)
    labelled = [i for i in images if i.labels is not None]
    if not labelled:
        raise InputError(f"collection {path!r}: no image has labels (<name>/labels); "
                         "nothing to train on")
    validate = list(validate or [])
    if validate:
        given = [p for _, r, g in validate for p in (r, g)]
        train = [i for i in labelled
                 if not any(_same(p, q) for p in (i.raw, i.labels) for q in given)]
        held = "validation as given"
    elif len(labelled) >= 2:
        last = labelled[-1]
        train, validate = labelled[:-1], [(as_dataset_name(last.name), last.raw, last.labels)]
        held = f"image {last.name!r} held out for validation (the last labelled one by name)"
    else:
        train, held = labelled, "no validation (one labelled image; give --validate)"
    if not train:
        raise InputError(f"collection {path!r}: every labelled image is a validation one; "
                         "nothing left to train on")
    unused = len(images) - len(labelled)
    note = (f"collection {path}: {len(images)} image(s), {len(train)} trained on, one dataset "
            f"each (a network never sees two images at once); {held}"
            + (f"; {unused} unlabelled image(s) not used" if unused else ""))
    return [i.labels for i in train], [i.raw for i in train], validate, note


def plan_collection(path: str, kind: str, *, validate=None, **kwargs):
    """`plan_run` for the collection ``path`` (datasets by `collection_datasets`; other
    keyword arguments as `plan_run`'s): (RunConfig, commented YAML text)."""
    gts, raws, val, note = collection_datasets(path, validate)
    rc, text = plan_run(gts, raws, kind, validate=val, **kwargs)
    return rc, f"# {note}\n{text}"
