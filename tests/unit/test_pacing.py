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


def _pacer(share: float) -> tuple[Pacer, Clock]:
    clock = Clock()
    return Pacer(share, clock=clock, sleep=clock.sleep), clock


def _sent_at(pacer: Pacer, clock: Clock, requests: int) -> list[float]:
    times = []
    for _ in range(requests):
        pacer.wait()
        times.append(round(clock.now - 100.0, 3))
    return times


def test_requests_leave_one_every_1_over_rate_seconds_after_a_burst_s_worth_at_once() -> None:
    pacer, clock = _pacer(2.5)
    # 0.8 s at 2.5 a second: two at once, then one every 0.4 s
    assert _sent_at(pacer, clock, 5) == [0.0, 0.0, 0.4, 0.8, 1.2]
    clock.now += 0.3  # a pause shorter than a slot: no slot was left unused
    assert _sent_at(pacer, clock, 2) == [1.6, 2.0]
    clock.now += 10.0  # a long pause: a burst's worth of slots, no more
    assert _sent_at(pacer, clock, 4) == [12.0, 12.0, 12.4, 12.8]


def test_a_burst_leaves_a_fifth_of_the_service_s_bucket_unused() -> None:
    # ECR's bucket holds a second of its rate (the ECR stand-in's _Bucket): at 10 a second, ten
    # requests at once pass and an eleventh is refused. The pacer sends eight, so that two
    # sent later but arriving bunched with them still find a token.
    pacer, clock = _pacer(10.0)
    sent = _sent_at(pacer, clock, 10)
    assert sent == [0.0] * 8 + [0.1, 0.2]


@pytest.mark.parametrize("share", [0.5, 1.0, 1.2])
def test_a_share_whose_slot_is_longer_than_the_burst_still_sends_one_every_1_over_rate_seconds(share: float) -> None:
    # ten jobs at once share 10 a second at 1 each; a job cut to the floor sends at 0.5
    pacer, clock = _pacer(share)
    sent = _sent_at(pacer, clock, 4)
    assert sent == pytest.approx([0.0, 1 / share, 2 / share, 3 / share], abs=1e-3)


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
    pacer, clock = _pacer(10.0)
    pacer.refused()  # 7 a second
    pacer.wait()
    pacer.passed()
    early = pacer.rate - 7.0
    clock.now += 8.0
    before = pacer.rate
    pacer.passed()
    assert pacer.rate - before > 4 * early


def test_the_rate_stays_within_its_floor_and_its_share() -> None:
    pacer, clock = _pacer(4.0)
    for _ in range(50):
        pacer.wait()
        pacer.passed()
    assert pacer.rate == 4.0  # never over its share, however long no 429 came
    for _ in range(50):
        clock.now += 1.0
        pacer.refused()
    assert pacer.rate == 0.5
    assert _pacer(0.01)[0].rate == 0.5


def test_a_job_left_alone_takes_up_the_share_the_others_leave() -> None:
    pacer, clock = _pacer(2.5)  # one of four jobs at 10 a second
    clock.now += 1.0
    pacer.refused()  # cut to 1.75
    pacer.reshare(10.0)  # the three others ended
    assert (pacer.share, pacer.rate) == (10.0, pytest.approx(7.0))
    pacer.reshare(5.0)  # one started again
    assert (pacer.share, pacer.rate) == (5.0, pytest.approx(3.5))
    sent = _sent_at(pacer, clock, 3)
    assert sent[2] - sent[1] == pytest.approx(1 / 3.5, abs=1e-3)


def test_paced_429s_are_retried_for_as_long_as_the_target_s_backoff_would_wait() -> None:
    # 0.5 + 1 + 2 + 4 + 8 + 10 + 10: what eight attempts of the target's policy wait at most
    assert TARGET_RETRY.patience == pytest.approx(35.5)
