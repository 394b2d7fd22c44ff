"""Pieces every part of the pipeline shares: configuration and logging."""
