"""Monitoring: per-token projections onto trait vectors, prompt-set group comparisons, and their views."""
