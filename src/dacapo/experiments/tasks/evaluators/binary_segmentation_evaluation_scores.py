"""PLACEHOLDER: being implemented."""


class BinarySegmentationEvaluationScores:
    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs = args, kwargs
