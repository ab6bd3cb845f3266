"""Confidence intervals of success rates: the Wilson score interval for k successes in n episodes.

    >>> format_interval(wilson_interval(16, 64))
    'success 0.250 [0.160, 0.368] (n=64 episodes)'

The Wilson interval stays inside [0, 1] and keeps a useful width at 0 or n
successes, where the normal approximation collapses to a point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist


@dataclass(frozen=True)
class RateInterval:
    """A success rate with its confidence interval."""

    rate: float
    """Observed rate k / n, in [0, 1]."""
    low: float
    """Lower end of the interval."""
    high: float
    """Upper end of the interval."""
    n: int
    """Number of trials (episodes) the rate is over."""
    confidence: float = 0.95
    """Coverage the interval was computed for."""

    def overlaps(self, other: RateInterval) -> bool:
        """True when the two intervals share a point."""
        return self.low <= other.high and other.low <= self.high


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> RateInterval:
    """The Wilson score interval of ``successes`` in ``n`` trials at ``confidence`` (two-sided)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"wilson_interval: n must be a positive number of trials (got {n!r})")
    if isinstance(successes, bool) or not isinstance(successes, int) or not 0 <= successes <= n:
        raise ValueError(f"wilson_interval: successes must be an integer in [0, n={n}] (got {successes!r})")
    if not 0 < confidence < 1:
        raise ValueError(f"wilson_interval: confidence must be in (0, 1) (got {confidence!r})")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    rate = successes / n
    scale = 1 + z * z / n
    center = (rate + z * z / (2 * n)) / scale
    half = z / scale * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n))
    low = 0.0 if successes == 0 else center - half  # exact ends where rounding would leave 1e-17 off them
    high = 1.0 if successes == n else center + half
    return RateInterval(rate, low, high, n, confidence)


def format_interval(interval: RateInterval, label: str = "success", unit: str = "episodes") -> str:
    """``success 0.250 [0.160, 0.368] (n=64 episodes)``: the rate, its interval and what it counts."""
    return f"{label} {interval.rate:.3f} [{interval.low:.3f}, {interval.high:.3f}] (n={interval.n} {unit})"
