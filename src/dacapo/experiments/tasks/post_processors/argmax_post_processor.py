"""PLACEHOLDER: being implemented."""


class ArgmaxPostProcessor:
    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs = args, kwargs
