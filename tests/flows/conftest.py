"""Flow tests share one Prefect test server per session: `prefect_api` and `warehouse_dir`
live in tests/conftest.py (tests/resilience uses them too)."""
