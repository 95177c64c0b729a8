"""pybreaker's circuit breaker, driven from async code.

pybreaker's own ``call_async`` needs Tornado, and its half-open state lets every caller
through. This adapter keeps pybreaker as the state machine (its counters, storage,
listeners and transitions) and adds what async callers need:

- ``admit()`` decides synchronously, so no other task runs between the check and the
  booking: an open breaker refuses with ``BreakerOpen`` at once, without a call; once the
  reset timeout has passed it moves to half-open, which admits at most
  ``half_open_calls`` trial calls at a time and refuses the rest.
- ``record(ticket, error)`` feeds the outcome of an admitted call back through pybreaker's
  own ``call`` path, so failures are counted by pybreaker, ``fail_max`` opens it, a trial
  failure re-opens it, and ``success_threshold`` trial successes close it.
- Outcomes from before a transition are dropped (each ticket names the generation it was
  admitted in): a slow call admitted while closed cannot close a breaker that has opened
  since.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import anyio
import pybreaker

from actors.errors import BreakerOpen, CrosswalkSystemError

__all__ = ["AsyncBreaker", "Ticket"]

# pybreaker's names -> the ones Query.systems and the metrics use
_STATE_NAMES = {
    pybreaker.STATE_CLOSED: "closed",
    pybreaker.STATE_OPEN: "open",
    pybreaker.STATE_HALF_OPEN: "half_open",
}


def counts_as_failure(error: BaseException) -> bool:
    """Connection errors, timeouts and 5xx count; refusals (4xx, throttling) do not.

    Anything that is not a system error is a connector bug: count it, since the system's
    answers cannot be used either way.
    """
    if isinstance(error, CrosswalkSystemError):
        return bool(error.counts_as_failure)
    return True


@dataclass(frozen=True, slots=True)
class Ticket:
    """Permission for one call, from ``admit``; hand it back to ``record`` or ``release``."""

    generation: int
    trial: bool


class _Outcome(Exception):
    """Carries an admitted call's counted failure into pybreaker's synchronous ``call``."""


class _Listener(pybreaker.CircuitBreakerListener):
    def __init__(self, owner: AsyncBreaker) -> None:
        self._owner = owner

    def state_change(self, cb: object, old_state: object, new_state: object) -> None:
        self._owner._on_transition(
            getattr(old_state, "name", None), getattr(new_state, "name", "closed")
        )


class AsyncBreaker:
    """One system's circuit breaker, safe for many concurrent tasks on one event loop."""

    def __init__(
        self,
        system: str,
        *,
        fail_max: int,
        reset_timeout: float,
        success_threshold: int = 1,
        half_open_calls: int = 1,
        on_transition: Callable[[str, str], None] | None = None,
    ) -> None:
        self.system = system
        self.half_open_calls = half_open_calls
        self._on_transition_cb = on_transition
        self._generation = 0
        self._trials = 0
        self._opened_at = 0.0
        self._breaker = pybreaker.CircuitBreaker(
            fail_max=fail_max,
            reset_timeout=reset_timeout,
            success_threshold=success_threshold,
            # only _Outcome is ever raised through it, and only for counted failures
            exclude=[lambda exc: not isinstance(exc, _Outcome)],
            listeners=[_Listener(self)],
            name=system,
        )

    @property
    def state(self) -> str:
        """``"closed"``, ``"open"`` or ``"half_open"``."""
        return _STATE_NAMES[self._breaker.current_state]

    @property
    def fail_counter(self) -> int:
        return int(self._breaker.fail_counter)

    @property
    def success_counter(self) -> int:
        return int(self._breaker.success_counter)

    @property
    def reset_timeout(self) -> float:
        return float(self._breaker.reset_timeout)

    def seconds_until_half_open(self) -> float:
        """How long an open breaker stays open; 0 when it is not open."""
        if self._breaker.current_state != pybreaker.STATE_OPEN:
            return 0.0
        return max(0.0, self._opened_at + self.reset_timeout - anyio.current_time())

    def admit(self) -> Ticket:
        """Book one call or raise BreakerOpen; never awaits, so it is atomic on the loop."""
        state = self._breaker.current_state
        if state == pybreaker.STATE_OPEN:
            wait = self.seconds_until_half_open()
            if wait > 0:
                raise BreakerOpen(
                    self.system,
                    f"circuit breaker open after {self._breaker.fail_max} failures; "
                    f"no call made, next trial in {wait:.1f} s",
                    retry_after=wait,
                )
            self._breaker.half_open()  # pybreaker notifies listeners; generation moves on
            state = pybreaker.STATE_HALF_OPEN
        if state == pybreaker.STATE_HALF_OPEN:
            if self._trials >= self.half_open_calls:
                raise BreakerOpen(
                    self.system,
                    f"circuit breaker half-open: its {self.half_open_calls} trial call(s) are "
                    f"in flight; no call made, retry shortly",
                )
            self._trials += 1
            return Ticket(self._generation, trial=True)
        return Ticket(self._generation, trial=False)

    def record(self, ticket: Ticket, error: BaseException | None) -> None:
        """Feed back an admitted call's outcome (None = success)."""
        self._release(ticket)
        if ticket.generation != self._generation:
            return  # the breaker changed state while this call ran: its outcome is stale
        failed = error is not None and counts_as_failure(error)
        if not failed and not ticket.trial and self._breaker.fail_counter == 0:
            # closed and nothing to reset: pybreaker would change nothing (hot path)
            return
        outcome = _Outcome() if failed else None
        # pybreaker's own synchronous path counts, transitions and notifies listeners
        with contextlib.suppress(_Outcome, pybreaker.CircuitBreakerError):
            self._breaker.call(_raise, outcome)

    def release(self, ticket: Ticket) -> None:
        """Give a ticket back without an outcome (the call was cancelled before it ended)."""
        self._release(ticket)

    def _release(self, ticket: Ticket) -> None:
        if ticket.trial and ticket.generation == self._generation:
            self._trials -= 1

    def _on_transition(self, old: str | None, new: str) -> None:
        self._generation += 1
        self._trials = 0
        if new == pybreaker.STATE_OPEN:
            self._opened_at = anyio.current_time()
        if old is not None and self._on_transition_cb is not None:
            self._on_transition_cb(_STATE_NAMES.get(old, old), _STATE_NAMES.get(new, new))


def _raise(outcome: _Outcome | None) -> None:
    if outcome is not None:
        raise outcome
