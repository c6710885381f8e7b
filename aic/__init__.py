"""aic: an ahead-of-time deep-learning compiler."""

__version__ = "0.1.0"
