"""PLACEHOLDER: being implemented."""


class WatershedPostProcessor:
    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs = args, kwargs
