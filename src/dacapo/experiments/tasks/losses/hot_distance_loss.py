"""PLACEHOLDER: being implemented."""


class HotDistanceLoss:
    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs = args, kwargs
