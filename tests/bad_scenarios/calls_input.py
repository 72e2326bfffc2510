"""Asks the terminal for the learning rate."""
import torch

lr = float(input("lr? "))
