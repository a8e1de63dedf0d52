"""Hypothesis profile for the transform tests: modest example counts, no deadline."""

from hypothesis import settings

settings.register_profile("ci", max_examples=50, deadline=None)
settings.load_profile("ci")
