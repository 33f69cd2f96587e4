"""PLACEHOLDER: being implemented."""


class WatershedPostProcessorParameters:
    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs = args, kwargs
