"""Work-pool setup, deployment helpers and the worker container recipe."""
