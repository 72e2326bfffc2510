"""Engine tests: they import no textual (tests/test_layout.py checks it)."""
