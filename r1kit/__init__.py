"""r1kit: train reasoning language models the DeepSeek-R1 way (see README.md)."""

__version__ = "0.1.0"
