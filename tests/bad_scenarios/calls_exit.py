"""Calls sys.exit while loading."""
import sys

import torch

sys.exit(1)
