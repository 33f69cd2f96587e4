"""PLACEHOLDER: being implemented."""


class MultiClassEvaluationScores:
    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs = args, kwargs
