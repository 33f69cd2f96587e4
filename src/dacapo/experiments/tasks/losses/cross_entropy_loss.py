"""PLACEHOLDER: being implemented."""


class WeightedCrossEntropyLoss:
    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs = args, kwargs
