"""gdtui: a terminal step-debugger for PyTorch gradient descent."""

__version__ = "0.1.0"
