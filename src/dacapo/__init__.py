"""dacapo: segmentation tasks and a lean pipeline for large 2D/3D microscopy volumes."""

__version__ = "0.1.0"
