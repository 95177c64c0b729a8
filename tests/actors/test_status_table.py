"""The one HTTP status -> error table every connector falls back on (``actors.errors``)."""

from __future__ import annotations

import pytest

from actors.errors import (
    Conflict,
    CrosswalkSystemError,
    NotFound,
    Rejected,
    SystemUnavailable,
    Throttled,
    error_for_status,
    refused_credentials,
)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, Rejected),
        (401, Rejected),
        (403, Rejected),
        (404, NotFound),
        (409, Conflict),
        (412, Conflict),
        (418, Rejected),
        (422, Rejected),
        (429, Throttled),
        (500, SystemUnavailable),
        (503, SystemUnavailable),
    ],
)
def test_each_status_means_one_error_class(status: int, kind: type[CrosswalkSystemError]) -> None:
    error = error_for_status("erp", status, "answered")
    assert type(error) is kind
    assert error.status == status
    assert error.system == "erp"


def test_a_throttle_carries_the_vendors_hint_else_the_pause() -> None:
    hinted = error_for_status(
        "support", 429, "slow down", headers={"Retry-After": "7"}, max_retry_after=5.0, pause=1.0
    )
    assert hinted.retry_after == 5.0  # capped by policy
    silent = error_for_status("billing", 429, "slow down", headers={}, pause=1.0)
    assert silent.retry_after == 1.0
    assert error_for_status("crm", 404, "gone", pause=1.0).retry_after is None


def test_refused_credentials_count_against_the_system_but_are_not_retried() -> None:
    error = refused_credentials("crm", "INVALID_SESSION_ID", status=401)
    assert isinstance(error, SystemUnavailable)
    assert error.counts_as_failure
    assert not error.retryable
    assert SystemUnavailable("crm", "down").retryable  # only this instance was marked
