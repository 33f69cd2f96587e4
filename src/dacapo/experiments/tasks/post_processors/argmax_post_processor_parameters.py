"""PLACEHOLDER: being implemented."""


class ArgmaxPostProcessorParameters:
    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs = args, kwargs
