"""Experiments and arms: sticky assignment, lifecycle and online statistics."""
