"""When an actor tries a call again, and how long it waits first."""

from __future__ import annotations

import random

from actors.errors import BreakerOpen, CrosswalkSystemError
from actors.messages import Message

__all__ = ["full_jitter", "may_retry"]


def full_jitter(attempt: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based): uniform in [0, min(cap,
    base * 2**(attempt-1))], so many callers that failed together do not retry together.
    """
    return rng.uniform(0.0, min(cap, base * 2 ** (attempt - 1)))


def may_retry(message: Message, error: BaseException) -> bool:
    """Only reads are retried here, and only for errors that may pass.

    Writes are retried by the outbox dispatcher (with the same idempotency key), never
    inside the actor, so one delivery attempt is one upstream call. An open breaker is
    not retried: it answers at once and spends no attempts.
    """
    if not message.read or isinstance(error, BreakerOpen):
        return False
    return isinstance(error, CrosswalkSystemError) and bool(error.retryable)
