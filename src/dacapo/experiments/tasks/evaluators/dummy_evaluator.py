"""Dummy evaluator (tests): deterministic voxel agreement."""

from __future__ import annotations

import numpy as np

from dacapo.io.arrays import open_array, read_array

from .dummy_evaluation_scores import DummyEvaluationScores
from .evaluator import Evaluator


class DummyEvaluator(Evaluator):
    """``frizz_level`` = fraction of voxels where (output != 0) == (gt != 0);
    ``blipp_score`` = 1 - frizz_level. No randomness."""

    def evaluate(self, output_array, evaluation_array) -> DummyEvaluationScores:
        output = open_array(output_array, "output")
        truth = open_array(evaluation_array, "evaluation")
        out = read_array(output, output.roi) != 0
        gt = read_array(truth, truth.roi) != 0
        if out.shape != gt.shape:
            raise ValueError(f"output shape {out.shape} != evaluation shape {gt.shape}")
        agree = float(np.mean(out == gt))
        return DummyEvaluationScores({"frizz_level": agree, "blipp_score": 1 - agree})

    @property
    def score(self) -> DummyEvaluationScores:
        return DummyEvaluationScores()
