import numpy as np
import pytest

from dacapo.ops.section_labels import sections_apart, shared_fractions


def _cells(shape=(8, 20, 20), seed=0):
    """Columns of cells: every section has the same ids (a stack of prisms)."""
    rng = np.random.default_rng(seed)
    plane = np.repeat(np.repeat(rng.permutation(16).reshape(4, 4) + 1, 5, 0), 5, 1)
    return np.broadcast_to(plane, shape).copy()


def test_shared_fractions_match_a_loop():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, size=(5, 6, 7))
    labels[2] = 0  # nothing labelled: NaN beside it
    got = shared_fractions(labels)
    for z in range(4):
        pairs = [(labels[z, y, x], labels[z + 1, y, x]) for y in range(6) for x in range(7)]
        both = [(a, b) for a, b in pairs if a != 0 and b != 0]
        if not both:
            assert np.isnan(got[z])
        else:
            assert got[z] == pytest.approx(sum(a == b for a, b in both) / len(both))
    assert np.isnan(got[1]) and np.isnan(got[2])


def test_a_relabelled_section_is_found():
    labels = _cells()
    labels[3] += 1000  # same shapes, other ids: labelled on its own
    assert sections_apart(labels) == [3]
    labels[0] += 2000  # the first section has one neighbour
    assert sections_apart(labels) == [0, 3]


def test_consistent_or_unstacked_labels_give_none():
    labels = _cells()
    assert sections_apart(labels) == []
    # a true boundary plane across half the volume is not a section apart
    labels[4:, :10] += 100
    assert sections_apart(labels) == []
    # unrelated 2D frames stacked: no typical sharing, nothing to single out
    frames = np.stack([_cells((1, 20, 20), s)[0] + 100 * s for s in range(6)])
    assert sections_apart(frames) == []
    assert sections_apart(np.zeros((2, 4, 4), int)) == []
    assert sections_apart(np.zeros((5, 4, 4), int)) == []


def test_background_does_not_count():
    labels = _cells()
    labels[:, :, :12] = 0  # mostly background, as nuclei in a field
    labels[5, :, 12:] += 1000
    assert sections_apart(labels) == [5]
