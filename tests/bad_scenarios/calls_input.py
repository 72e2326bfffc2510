"""Asks the terminal for the learning rate."""

lr = float(input("lr? "))
