"""Calls sys.exit while loading."""
import sys

sys.exit(1)
