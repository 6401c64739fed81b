"""The circuit breaker's rule, on a clock of its own: failures in a row or a failure rate over a window open it; one
failure among successes, or failures spread over more than the window, do not; a trial closes or reopens it."""

from real_estate_api.breaker import CLOSED, FAILURE_SHARE, HALF_OPEN, MIN_CALLS, OPEN, TRIP_AFTER, WINDOW_SECONDS, CircuitBreaker


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def _breaker():
    clock = Clock()
    changes = []
    return CircuitBreaker("milvus", 5.0, lambda name, state: changes.append(state), clock=clock), clock, changes


def _call(breaker, ok: bool) -> None:
    ticket = breaker.allow()
    assert ticket is not None
    (breaker.success if ok else breaker.failure)(ticket)


def test_the_rule_in_numbers():
    assert (TRIP_AFTER, WINDOW_SECONDS, MIN_CALLS, FAILURE_SHARE) == (3, 10.0, 10, 0.5)


def test_failures_in_a_row_open_it_and_a_success_between_them_does_not():
    breaker, _, changes = _breaker()
    for ok in (False, False, True, False, False):
        _call(breaker, ok)
    assert breaker.state == CLOSED and changes == []
    _call(breaker, False)
    assert breaker.state == OPEN and changes == [OPEN] and breaker.allow() is None


def test_one_failure_among_successes_is_no_outage():
    breaker, clock, _ = _breaker()
    for i in range(100):
        _call(breaker, i % 10 != 0)  # 10 % failing, never two in a row
        clock.now += 0.05
    assert breaker.state == CLOSED


def test_half_the_calls_failing_within_the_window_opens_it():
    breaker, clock, _ = _breaker()
    # Alternating: never two failures in a row. Nine calls are too few to judge; the tenth makes half of ten.
    for i in range(MIN_CALLS - 1):
        _call(breaker, i % 2 == 1)
        clock.now += 0.1
    assert breaker.state == CLOSED
    _call(breaker, False)
    assert breaker.state == OPEN


def test_just_under_half_keeps_it_closed():
    breaker, clock, _ = _breaker()
    # 4 failures in 10 calls (never two in a row), then 5 in 11.
    for ok in (True, False, True, False, True, True, False, True, False, True):
        _call(breaker, ok)
        clock.now += 0.1
    assert breaker.state == CLOSED
    _call(breaker, False)
    assert breaker.state == CLOSED  # 5 of 11
    _call(breaker, False)
    assert breaker.state == OPEN  # two in a row is not three: 6 of 12 is half


def test_failures_older_than_the_window_are_forgotten():
    breaker, clock, _ = _breaker()
    for ok in (False, True) * 4:
        _call(breaker, ok)
        clock.now += 0.1
    clock.now += WINDOW_SECONDS
    _call(breaker, False)
    _call(breaker, True)
    # Counted with the old ones, 5 failures of 10 would open it; in its window there are 2 calls.
    assert breaker.state == CLOSED


def test_a_trial_closes_it_with_a_clean_record_or_opens_it_again():
    breaker, clock, changes = _breaker()
    for _ in range(TRIP_AFTER):
        _call(breaker, False)
    clock.now += 5.0
    assert breaker.state == HALF_OPEN
    ticket = breaker.allow()
    assert breaker.allow() is None  # one trial at a time
    breaker.failure(ticket)
    assert breaker.state == OPEN
    clock.now += 5.0
    _call(breaker, True)
    assert breaker.state == CLOSED and changes == [OPEN, HALF_OPEN, OPEN, HALF_OPEN, CLOSED]
    # The failures before the trial do not count against the closed circuit.
    _call(breaker, False)
    _call(breaker, False)
    assert breaker.state == CLOSED


def test_a_stale_outcome_changes_nothing():
    breaker, clock, _ = _breaker()
    slow = breaker.allow()
    for _ in range(TRIP_AFTER):
        _call(breaker, False)
    assert breaker.state == OPEN
    breaker.success(slow)  # admitted while closed, answered after the circuit opened
    assert breaker.state == OPEN
