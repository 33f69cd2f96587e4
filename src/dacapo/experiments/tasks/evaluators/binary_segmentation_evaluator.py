"""PLACEHOLDER: being implemented."""


class BinarySegmentationEvaluator:
    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs = args, kwargs
