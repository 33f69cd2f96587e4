"""PLACEHOLDER: being implemented."""


class AffinitiesLoss:
    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs = args, kwargs
