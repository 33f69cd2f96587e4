"""PLACEHOLDER: being implemented."""


class HotDistancePredictor:
    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs = args, kwargs
