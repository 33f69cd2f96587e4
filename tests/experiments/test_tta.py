"""Flip test-time augmentation (dacapo.tta) against a numpy twin."""

from __future__ import annotations

import numpy as np
import torch

from dacapo.experiments.tta import flip_sets, forward, problems


def test_flip_mean_equals_numpy_twin():
    torch.manual_seed(0)
    model = torch.nn.Conv3d(1, 2, (1, 3, 3), padding=(0, 1, 1))
    x = torch.randn(1, 1, 2, 7, 9)
    with torch.no_grad():
        got = forward(model, x, flips=True).numpy()
        ref = np.zeros_like(got)
        for fy in (False, True):
            for fx in (False, True):
                axes = tuple(a for a, on in ((3, fy), (4, fx)) if on)
                xi = np.flip(x.numpy(), axes) if axes else x.numpy()
                y = model(torch.from_numpy(np.ascontiguousarray(xi))).numpy()
                ref += np.flip(y, axes) if axes else y
        assert np.allclose(got, ref / 4, atol=1e-6)
        assert np.array_equal(forward(model, x).numpy(), model(x).numpy())
    assert flip_sets(3) == [(), (4,), (3,), (3, 4)]


def test_affinities_refuse_flips():
    from types import SimpleNamespace

    from dacapo.experiments.tasks import AffinitiesTaskConfig

    rc = SimpleNamespace(task_config=AffinitiesTaskConfig("a", neighborhood=[(1, 0, 0)]),
                         test_time_flips=True)
    assert problems(rc)[0].startswith("test_time_flips: not for a AffinitiesTaskConfig")
