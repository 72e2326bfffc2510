"""Imports a module that does not exist."""
import torch
import not_a_real_module_for_gdtui  # noqa: F401
