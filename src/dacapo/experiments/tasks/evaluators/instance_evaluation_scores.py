"""PLACEHOLDER: being implemented."""


class InstanceEvaluationScores:
    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs = args, kwargs
