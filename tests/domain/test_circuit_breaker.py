"""The circuit breaker around Stripe, driven by a clock the test moves."""

from __future__ import annotations

import pytest

from billing_engine.stripe.circuit_breaker import BreakerState, CircuitBreaker, CircuitOpen


class Seconds:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Seconds:
    return Seconds()


@pytest.fixture
def changes() -> list[BreakerState]:
    return []


@pytest.fixture
def breaker(clock: Seconds, changes: list[BreakerState]) -> CircuitBreaker:
    return CircuitBreaker(
        failure_threshold=3, cooldown_seconds=30, clock=clock, on_change=changes.append
    )


def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        breaker.before_call()
        breaker.record_failure()


def test_stays_closed_below_the_threshold(breaker):
    fail(breaker, 2)
    assert breaker.state() is BreakerState.CLOSED
    breaker.before_call()  # still lets calls through


def test_a_success_resets_the_count_of_consecutive_failures(breaker):
    fail(breaker, 2)
    breaker.before_call()
    breaker.record_success()
    fail(breaker, 2)
    assert breaker.state() is BreakerState.CLOSED
    assert breaker.consecutive_failures == 2


def test_opens_after_n_consecutive_failures_and_refuses_calls(breaker, clock, changes):
    fail(breaker, 3)
    assert breaker.state() is BreakerState.OPEN
    assert changes == [BreakerState.OPEN]
    clock.now += 10
    with pytest.raises(CircuitOpen) as refused:
        breaker.before_call()
    assert refused.value.retry_in_seconds == pytest.approx(20)


def test_half_open_after_the_cool_down_lets_exactly_one_probe_through(breaker, clock):
    fail(breaker, 3)
    clock.now += 30
    assert breaker.state() is BreakerState.HALF_OPEN
    breaker.before_call()  # the probe
    with pytest.raises(CircuitOpen):
        breaker.before_call()  # a second caller while the probe is out
    assert breaker.state() is BreakerState.HALF_OPEN


def test_a_successful_probe_closes_it(breaker, clock, changes):
    fail(breaker, 3)
    clock.now += 31
    breaker.before_call()
    breaker.record_success()
    assert breaker.state() is BreakerState.CLOSED
    assert breaker.consecutive_failures == 0
    assert changes == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]
    breaker.before_call()


def test_a_failed_probe_opens_it_for_a_full_cool_down_again(breaker, clock, changes):
    fail(breaker, 3)
    clock.now += 30
    breaker.before_call()
    breaker.record_failure()
    assert breaker.state() is BreakerState.OPEN
    clock.now += 29
    with pytest.raises(CircuitOpen):
        breaker.before_call()
    clock.now += 1
    assert breaker.state() is BreakerState.HALF_OPEN
    assert changes == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.OPEN]


def test_a_probe_that_was_not_made_frees_the_slot(breaker, clock):
    fail(breaker, 3)
    clock.now += 30
    breaker.before_call()
    breaker.release()
    breaker.before_call()  # another caller may probe now


def test_threshold_must_be_positive(clock):
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker(failure_threshold=0, clock=clock)


def test_gauge_values_match_the_agreed_encoding():
    assert [s.value for s in BreakerState] == [0, 1, 2]
    assert [s.name for s in BreakerState] == ["CLOSED", "OPEN", "HALF_OPEN"]
