"""A circuit breaker for calls to an outside service, with the clock passed in.

Closed: calls go through; `failure_threshold` failures in a row open it. Open: calls are refused
without being made until `cooldown_seconds` have passed. Half-open: one probe call is let through;
its success closes the breaker, its failure opens it again for another cool-down.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from enum import IntEnum

from billing_core.errors import UpstreamError


class BreakerState(IntEnum):
    """Values are what the `stripe_circuit_breaker_state` gauge exports."""

    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class CircuitOpen(UpstreamError):
    """The breaker refused the call; nothing was sent."""

    code = "circuit_open"

    def __init__(self, retry_in_seconds: float) -> None:
        super().__init__(f"circuit open; next probe in {retry_in_seconds:.0f} s")
        self.retry_in_seconds = retry_in_seconds


class CircuitBreaker:
    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        cooldown_seconds: float = 30.0,
        clock: Callable[[], float],
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.failure_threshold = failure_threshold
        self.cooldown_seconds = cooldown_seconds
        self._clock = clock
        self._on_change = on_change
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._probe_in_flight = False
        self._reported = BreakerState.CLOSED

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def state(self) -> BreakerState:
        with self._lock:
            return self._state()

    def _state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._probe_in_flight or self._clock() - self._opened_at >= self.cooldown_seconds:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def before_call(self) -> None:
        """Ask to make a call: returns when it may go ahead, raises CircuitOpen when not."""
        with self._lock:
            state = self._state()
            if state is BreakerState.CLOSED:
                return
            if state is BreakerState.HALF_OPEN and not self._probe_in_flight:
                self._probe_in_flight = True
                self._notify()
                return
            assert self._opened_at is not None
            waited = self._clock() - self._opened_at
            raise CircuitOpen(max(0.0, self.cooldown_seconds - waited))

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._probe_in_flight = False
            self._notify()

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._probe_in_flight or self._failures >= self.failure_threshold:
                # A failed probe, or the threshold reached: (re)open for a full cool-down.
                self._opened_at = self._clock()
                self._probe_in_flight = False
            self._notify()

    def release(self) -> None:
        """The call was not made after all (e.g. nothing to send): free a claimed probe slot."""
        with self._lock:
            self._probe_in_flight = False

    def _notify(self) -> None:
        state = self._state()
        if state is not self._reported:
            self._reported = state
            if self._on_change is not None:
                self._on_change(state)
