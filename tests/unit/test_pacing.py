"""The pace of a throttled action (ECR's PutImage) that jobs running at once share."""

from __future__ import annotations

import pytest

from hubmirror.adapters.registry.retry import TARGET_RETRY, Pacer


class Clock:
    """A clock that moves only when something sleeps."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.now += seconds


def _pacer(rate: float, *, ceiling: float = 10.0) -> tuple[Pacer, Clock]:
    clock = Clock()
    return Pacer(rate, ceiling=ceiling, clock=clock, sleep=clock.sleep), clock


def _sent_at(pacer: Pacer, clock: Clock, requests: int) -> list[float]:
    times = []
    for _ in range(requests):
        pacer.wait()
        times.append(round(clock.now - 100.0, 3))
    return times


def test_requests_leave_one_every_1_over_rate_seconds() -> None:
    pacer, clock = _pacer(2.5)
    assert _sent_at(pacer, clock, 4) == [0.0, 0.4, 0.8, 1.2]


def test_a_429_cuts_the_rate_by_30_percent_once_a_second_whatever_the_burst() -> None:
    pacer, clock = _pacer(5.0)
    pacer.wait()
    for _ in range(6):  # one burst: six requests refused within the same second
        pacer.refused()
    assert pacer.rate == pytest.approx(3.5)
    assert (pacer.throttled, pacer.cuts) == (6, 1)
    clock.now += 1.0
    pacer.refused()
    assert pacer.rate == pytest.approx(2.45)
    assert pacer.cuts == 2


def test_the_next_request_after_a_cut_waits_for_the_cut_rate() -> None:
    pacer, clock = _pacer(10.0)
    pacer.wait()
    pacer.refused()  # 7 a second from now on
    pacer.wait()
    assert clock.now - 100.0 == pytest.approx(1 / 7)


def test_the_rate_grows_faster_the_longer_no_429_came() -> None:
    pacer, clock = _pacer(2.0)
    pacer.wait()
    pacer.passed()
    early = pacer.rate - 2.0
    clock.now += 8.0
    before = pacer.rate
    pacer.passed()
    assert pacer.rate - before > 4 * early  # a job left alone takes up the rate the others left


@pytest.mark.parametrize("rate", [0.01, 50.0])
def test_the_rate_stays_within_its_floor_and_ceiling(rate: float) -> None:
    pacer, clock = _pacer(rate)
    assert 0.5 <= pacer.rate <= 10.0
    for _ in range(50):
        pacer.wait()
        pacer.passed()
    assert pacer.rate == 10.0
    for _ in range(50):
        clock.now += 1.0
        pacer.refused()
    assert pacer.rate == 0.5


def test_paced_429s_are_retried_for_as_long_as_the_target_s_backoff_would_wait() -> None:
    # 0.5 + 1 + 2 + 4 + 8 + 10 + 10: what eight attempts of the target's policy wait at most
    assert TARGET_RETRY.patience == pytest.approx(35.5)
