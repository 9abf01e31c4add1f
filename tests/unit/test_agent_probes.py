"""How often a booting agent is probed (issue 16: the probes' CPU in a burst)."""

from __future__ import annotations

from itertools import accumulate, islice

from app.providers.agent_http import boot_poll_delays


def test_a_quick_boot_is_seen_within_a_third_of_a_second() -> None:
    """An idle machine boots an agent in about 0.6 s; every pause in the first
    second is short enough that one answering is seen within 0.34 s."""
    delays = list(islice(boot_poll_delays(), 6))
    assert delays[0] == 0.1
    first_second = [d for d, t in zip(delays, accumulate(delays), strict=True) if t - d < 1]
    assert max(first_second) <= 0.34


def test_a_slow_boot_is_probed_at_most_twice_a_second() -> None:
    delays = list(islice(boot_poll_delays(), 40))
    assert max(delays) == 0.5
    probes_in_ten_seconds = len([t for t in accumulate(delays) if t <= 10])
    assert probes_in_ten_seconds <= 24  # a probe every 0.2 s made 50
