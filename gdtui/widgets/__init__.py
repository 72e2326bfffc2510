"""The step-debugger's widgets, one a module."""
