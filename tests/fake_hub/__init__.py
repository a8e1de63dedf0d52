"""A local fake of the Hugging Face Hub for dataset publishing and loading tests."""

from tests.fake_hub.hub import (
    FAULTS,
    CommitView,
    FakeHub,
    Fault,
    RequestRecord,
    XetRequest,
)

__all__ = ["FAULTS", "CommitView", "FakeHub", "Fault", "RequestRecord", "XetRequest"]
