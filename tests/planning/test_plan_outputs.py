"""What a plan writes is what a run reads: no field that the planned post-processor ignores
(with agglomeration the plan wrote ``min_fragment_sizes`` and ``mws_biases``, explained), and
snapshots at the checkpoints, as the README promises ``snapshots/`` (it planned 0: never)."""

from __future__ import annotations

from pathlib import Path

import attr
import pytest

from dacapo.experiments.run_config import RunConfig
from dacapo.experiments.tasks import AffinitiesTaskConfig
from dacapo.io.config_yaml import from_yaml
from dacapo.planning.planner import plan_run
from dacapo.planning.task_rules import LSD_FIELDS, UNREAD_BY_POST_PROCESSOR, unread_fields


@pytest.fixture(scope="module")
def container(tmp_path_factory, tiny_data) -> Path:
    return tiny_data(tmp_path_factory.mktemp("data"))


@pytest.mark.parametrize("kind,gt", [("affinities", "labels"), ("distance", "fg")])
def test_the_plan_writes_only_what_is_read(kind, gt, container):
    rc, text = plan_run([f"{container}/train/{gt}"], [f"{container}/train/raw"], kind,
                        minutes=0.5)
    assert from_yaml(text, RunConfig) == rc  # the config written is the config planned
    keys = {line.split(":")[0].strip() for line in text.splitlines()
            if not line.lstrip().startswith("#")}
    if kind == "affinities":
        assert rc.task_config.post_processor == "agglomeration"
        for field in UNREAD_BY_POST_PROCESSOR["agglomeration"]:
            assert field not in keys and field not in text, field
        assert "agglomeration_thresholds" in keys
        # planned without LSDs (docs/quality.md): their fields are not written either
        assert rc.task_config.lsds is False and "lsds" in keys
        for field in LSD_FIELDS:
            assert field not in keys, field
    assert unread_fields(rc.task_config) == (
        [f"task_config.{f}" for f in UNREAD_BY_POST_PROCESSOR["agglomeration"] + LSD_FIELDS]
        if kind == "affinities" else [])
    # a snapshot at every checkpoint, explained
    assert rc.snapshot_interval == rc.checkpoint_interval == rc.num_iterations // 4 > 0
    assert "# at every checkpoint: a training batch with its target, weight and prediction " \
           "in snapshots/" in text


@pytest.mark.parametrize("post_processor", sorted(UNREAD_BY_POST_PROCESSOR))
def test_the_fields_left_out_are_not_read(post_processor):
    """Any value of a field left out gives the same task: its post-processor, loss and
    predictor do not see it (`dacapo.experiments.tasks.affinities_task`)."""
    base = AffinitiesTaskConfig("aff", neighborhood=[(1, 0, 0), (0, 1, 0), (0, 0, 1), (0, 0, 4)],
                                post_processor=post_processor)
    other = {"min_fragment_sizes": [0, 7], "mws_biases": [0.3], "mws_long_range_bias_offset": 0.2,
             "agglomeration_thresholds": [0.4], "agglomeration_quantile": 50,
             "fragments_seed_distance": 3,
             "agglomeration_db_url": "postgresql://u:p@h:1/d"}
    unread = UNREAD_BY_POST_PROCESSOR[post_processor]
    changed = attr.evolve(base, **{f: other[f] for f in unread})
    assert changed != base
    a, b = base.build(), changed.build()
    assert vars(a.post_processor) == vars(b.post_processor)
    assert vars(a.loss) == vars(b.loss)
    assert vars(a.predictor).keys() == vars(b.predictor).keys()
    # and each field the other post-processor reads does change this one
    read = UNREAD_BY_POST_PROCESSOR[
        next(p for p in UNREAD_BY_POST_PROCESSOR if p != post_processor)]
    for field in read:
        c = attr.evolve(base, **{field: other[field]}).build()
        assert vars(c.post_processor) != vars(a.post_processor), field
