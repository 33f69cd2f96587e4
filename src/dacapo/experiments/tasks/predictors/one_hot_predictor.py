"""PLACEHOLDER: being implemented."""


class OneHotPredictor:
    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs = args, kwargs
