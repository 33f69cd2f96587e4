"""A 2D/3D UNet in the style of CNNectome / funlib.learn.torch (valid or same padding).

The implementation lives in `dacapo.export.unet_standalone` (plain torch, no dacapo
import), the file bioimage.io packages ship as their architecture.
"""

from dacapo.export.unet_standalone import CNNectomeUNet, ConvPass, center_crop

__all__ = ["CNNectomeUNet", "ConvPass", "center_crop"]
