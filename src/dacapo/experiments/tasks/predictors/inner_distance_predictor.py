"""PLACEHOLDER: being implemented."""


class InnerDistancePredictor:
    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs = args, kwargs
