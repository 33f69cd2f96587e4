"""`dacapo.training.step_timer`: a run's step timed on this machine, once, then read from
the cache (per machine and plan: the same plan again, the same numbers). The timings'
values are not asserted here (speed is measured in benchmarks/)."""

from __future__ import annotations

import json

import attr
import pytest

from dacapo.planning.planner import plan_run
from dacapo.training import step_timer
from dacapo.training.step_timer import measure_step


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DACAPO_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "step_times.json"


def test_a_step_is_timed_once_then_read_from_the_cache(tmp_path, cache, tiny_data, tiny_run):
    rc = tiny_run(tiny_data(tmp_path))
    first = measure_step(rc, 1)
    assert first.network > 0 and first.data > 0
    stored = json.loads(cache.read_text())
    assert list(stored.values()) == [attr.asdict(first)]
    assert measure_step(rc, 1) == first  # the same numbers, not a new timing
    # another thread count or network is another entry
    measure_step(rc, 2)
    bigger = attr.evolve(rc, architecture_config=attr.evolve(rc.architecture_config,
                                                             num_fmaps=8, fmaps_out=8))
    measure_step(bigger, 1)
    assert len(json.loads(cache.read_text())) == 3


def test_a_real_timed_plan_is_the_same_plan_again(tmp_path, cache, tiny_data):
    c = tiny_data(tmp_path)

    def plan():
        return plan_run([f"{c}/train/fg"], [f"{c}/train/raw"], "distance", minutes=2,
                        measure=measure_step)

    rc, text = plan()
    again, text_again = plan()
    assert again == rc and text_again == text
    assert "s per step measured on this machine" in text
    assert cache.is_file() and step_timer.cache_path() == cache
