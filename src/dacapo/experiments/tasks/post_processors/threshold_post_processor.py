"""PLACEHOLDER: being implemented."""


class ThresholdPostProcessor:
    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs = args, kwargs
