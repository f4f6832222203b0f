"""Retries of transient object-storage failures: how many, and what is raised after."""

import pytest

from seqpipe.sources._retries import with_retries


def _failing(times, error):
    """A request that raises ``error`` on its first ``times`` calls; counts its calls."""
    calls = []

    def request():
        calls.append(None)
        if len(calls) <= times:
            raise error
        return b"data"

    return request, calls


def test_a_transient_failure_is_tried_five_more_times_then_named():
    request, calls = _failing(5, OSError("HTTP 503 SlowDown"))
    assert with_retries(request, lambda: "s3://bucket/key") == b"data"
    assert len(calls) == 6
    request, calls = _failing(6, OSError("HTTP 503 SlowDown"))
    with pytest.raises(OSError, match=r"reading s3://bucket/key failed: HTTP 503 SlowDown"):
        with_retries(request, lambda: "s3://bucket/key")
    assert len(calls) == 6


def test_a_permanent_failure_is_not_retried():
    request, calls = _failing(1, OSError("AccessDenied"))
    with pytest.raises(PermissionError, match="access denied to s3://bucket/key"):
        with_retries(request, lambda: "s3://bucket/key")
    assert len(calls) == 1
