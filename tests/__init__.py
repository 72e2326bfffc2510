"""gdtui's tests: engine/ (no textual) and app/ (the screen); shared helpers and scenario folders here."""
