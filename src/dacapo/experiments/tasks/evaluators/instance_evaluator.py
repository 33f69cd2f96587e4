"""PLACEHOLDER: being implemented."""


class InstanceEvaluator:
    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs = args, kwargs
