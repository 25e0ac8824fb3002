"""scn-deploy: Scale-wise Convolution (SCN) image restoration toolkit."""

__version__ = "0.1.0"
