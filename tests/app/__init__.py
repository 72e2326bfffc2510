"""The screen's tests: Pilot, snapshots, tmux, the trainer client port and the widgets."""
