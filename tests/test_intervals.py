"""The Wilson score interval against values worked out by hand, and its refusals of bad input."""

from __future__ import annotations

import pytest

from prism_agents.reporting.intervals import RateInterval, format_interval, wilson_interval

Z95_SQUARED = 1.959963984540054**2  # 3.841459


def test_no_success_reaches_z_squared_over_n_plus_z_squared() -> None:
    # k = 0: center = half = (z^2 / 2n) / (1 + z^2 / n), so the interval is [0, z^2 / (n + z^2)] = [0, 3.841459 / 13.841459].
    interval = wilson_interval(0, 10)
    assert interval.rate == 0.0
    assert interval.low == 0.0
    assert interval.high == pytest.approx(0.277533, abs=1e-6)
    assert interval.high == pytest.approx(Z95_SQUARED / (10 + Z95_SQUARED), rel=1e-12)


def test_half_is_symmetric_around_one_half() -> None:
    # k = 5, n = 10: center 0.5; half = z / 1.3841459 * sqrt(0.025 + 3.841459 / 400) = 1.416003 * 0.186020 = 0.263407.
    interval = wilson_interval(5, 10)
    assert interval.rate == 0.5
    assert interval.low == pytest.approx(0.236593, abs=1e-6)
    assert interval.high == pytest.approx(0.763407, abs=1e-6)
    assert interval.n == 10 and interval.confidence == 0.95


def test_every_success_reaches_n_over_n_plus_z_squared() -> None:
    # k = n: the interval is [n / (n + z^2), 1] = [64 / 67.841459, 1].
    interval = wilson_interval(64, 64)
    assert interval.rate == 1.0
    assert interval.low == pytest.approx(0.943376, abs=1e-6)
    assert interval.high == 1.0


def test_higher_confidence_widens_the_interval() -> None:
    # 99 %: z = 2.575829, z^2 = 6.634897; k = 5, n = 10: half = z / 1.6634897 * sqrt(0.025 + 0.0165872) = 0.315774.
    interval = wilson_interval(5, 10, confidence=0.99)
    assert interval.low == pytest.approx(0.184226, abs=1e-6)
    assert interval.high == pytest.approx(0.815774, abs=1e-6)


def test_format_names_rate_interval_and_count() -> None:
    # 16 of 64: center (0.25 + 0.030011) / 1.060023 = 0.264156, half 1.848985 * sqrt(0.0029297 + 0.00023446) = 0.104007.
    assert format_interval(wilson_interval(16, 64)) == "success 0.250 [0.160, 0.368] (n=64 episodes)"
    assert format_interval(wilson_interval(1, 3), label="won", unit="tasks") == "won 0.333 [0.061, 0.792] (n=3 tasks)"


def test_overlap() -> None:
    low, high = wilson_interval(2, 64), wilson_interval(40, 64)
    assert not low.overlaps(high) and not high.overlaps(low)
    assert wilson_interval(5, 10).overlaps(wilson_interval(7, 10))
    assert RateInterval(0.5, 0.2, 0.4, 10).overlaps(RateInterval(0.5, 0.4, 0.6, 10))


@pytest.mark.parametrize(
    ("successes", "n", "message"),
    [
        (0, 0, "n must be a positive number of trials"),
        (1, -3, "n must be a positive number of trials"),
        (11, 10, r"successes must be an integer in \[0, n=10\]"),
        (-1, 10, r"successes must be an integer in \[0, n=10\]"),
        (2.5, 10, r"successes must be an integer"),
        (1, 10.0, "n must be a positive number of trials"),
    ],
)
def test_bad_counts_are_refused(successes: object, n: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        wilson_interval(successes, n)  # type: ignore[arg-type]


@pytest.mark.parametrize("confidence", [0.0, 1.0, 95.0])
def test_bad_confidence_is_refused(confidence: float) -> None:
    with pytest.raises(ValueError, match=r"confidence must be in \(0, 1\)"):
        wilson_interval(1, 10, confidence=confidence)
