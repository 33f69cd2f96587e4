"""PLACEHOLDER: being implemented."""


class MultiClassEvaluator:
    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs = args, kwargs
