"""Analyses that attach to the one training loop: one module per analysis."""
