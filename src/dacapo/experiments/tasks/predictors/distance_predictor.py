"""PLACEHOLDER: being implemented."""


class DistancePredictor:
    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs = args, kwargs
