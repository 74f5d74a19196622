"""Candidate and context sources: the tip catalog, profiles, signals and the event bus."""
