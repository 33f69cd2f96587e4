"""PLACEHOLDER: being implemented."""


class AffinitiesPredictor:
    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs = args, kwargs
