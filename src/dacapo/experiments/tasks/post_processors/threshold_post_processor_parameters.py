"""PLACEHOLDER: being implemented."""


class ThresholdPostProcessorParameters:
    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs = args, kwargs
