"""openseg: OpenSeg open-vocabulary segmentation in PyTorch."""

__version__ = "0.1.0"
