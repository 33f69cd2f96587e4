"""The classes of a plan and its training GT arrays: class ids in one array, or CellMap's
groups of one binary array per class (`dacapo.experiments.class_arrays`).

- ``--classes`` given: those names, in that order (one-hot: GT id i is ``classes[i]``;
  distance: channel i is GT id ``i + 1``, or the group's array of that name);
- not given, GT groups: the union of their array names, sorted;
- not given, class-id arrays: one-hot classes ``class_<id>`` for the ids found (at most
  `MAX_GUESSED_CLASSES`: more distinct values look like instance ids, an InputError says
  so); a distance task has one channel.
"""

from __future__ import annotations

from funlib.persistence import Array

from dacapo.errors import InputError
from dacapo.experiments.class_arrays import class_group, open_class_arrays
from dacapo.io.arrays import open_array

#: a one-hot GT without ``--classes`` holding more distinct values than this is refused
MAX_GUESSED_CLASSES = 32


def group_classes(gt_paths: list[str]) -> list[str] | None:
    """The sorted union of the class-array names of the GT groups; None without groups."""
    names: set[str] = set()
    found = False
    for path in gt_paths:
        members = class_group(path)
        if members is not None:
            found = True
            names.update(members)
    return sorted(names) if found else None


def open_training_gt(path: str, classes: list[str] | None, prefix: str) -> Array:
    """The GT array of ``path``: the ``(C, *spatial)`` stack of a group of class arrays
    (``classes`` in order, zeros for a missing one), else the array itself."""
    members = class_group(path)
    if members is None:
        return open_array(path, f"{prefix}: gt")
    try:
        stack, _ = open_class_arrays(path, members, classes or members, prefix)
    except ValueError as e:
        raise InputError(str(e)) from None
    return stack


def check_guessed_classes(label_values: list[int], kind: str) -> None:
    """InputError when a one-hot plan without ``--classes`` would take more than
    `MAX_GUESSED_CLASSES` classes from the GT's distinct values (instance ids, probably)."""
    if kind == "one_hot" and len(label_values) > MAX_GUESSED_CLASSES:
        raise InputError(
            f"plan: the training gt holds {len(label_values)} distinct values: instance ids, "
            f"not classes? Name the classes with --classes (GT id i = the i-th name), or plan "
            f"an instance task (--task affinities / inner_distance)")
