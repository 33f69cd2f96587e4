"""Network architectures (the body of a model; the task adds the head)."""

from .architecture_config import ArchitectureConfig
from .cnnectome_unet import CNNectomeUNet
from .cnnectome_unet_config import CNNectomeUNetConfig
from .dummy_architecture_config import DummyArchitecture, DummyArchitectureConfig

__all__ = [
    "ArchitectureConfig",
    "CNNectomeUNet",
    "CNNectomeUNetConfig",
    "DummyArchitecture",
    "DummyArchitectureConfig",
]
