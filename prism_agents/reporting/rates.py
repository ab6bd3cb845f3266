"""Success rates as reports show them: each with its 95 % Wilson interval and the episodes it counts.

A rate record is any mapping with ``successes`` and ``episodes`` (an evaluation's overall or per-task-type
row). Its interval is always computed from those two counts, so a summary written before intervals were
recorded reports them all the same. Scores (WebShop's mean reward) are means, not rates: they get no
interval here.

    >>> rate_text({"successes": 14, "episodes": 65})
    '21.54 [13.3, 33.0]'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prism_agents.reporting.intervals import RateInterval, wilson_interval

INTERVAL_NOTE = "95 % Wilson interval"
"""How reports name the bracketed interval beside a rate."""


def rate_interval(rates: Mapping[str, Any]) -> RateInterval | None:
    """The Wilson interval of a rate record's ``successes`` in ``episodes``; None for no episodes."""
    return wilson_interval(int(rates["successes"]), int(rates["episodes"])) if rates["episodes"] else None


def iteration_interval(rate: float, episodes: int) -> RateInterval | None:
    """The interval of a rate logged as a fraction of ``episodes`` (RL iterations log the rate, not the count)."""
    return rate_interval({"successes": round(rate * episodes), "episodes": episodes})


def interval_record(interval: RateInterval | None) -> dict[str, Any] | None:
    """The JSON form of an interval (the counts, and the bounds as fractions in [0, 1]); None stays None."""
    if interval is None:
        return None
    return {
        "successes": round(interval.rate * interval.n),
        "episodes": interval.n,
        "low": interval.low,
        "high": interval.high,
        "confidence": interval.confidence,
        "method": "wilson",
    }


def record_interval(record: Mapping[str, Any] | None) -> RateInterval | None:
    """The interval an :func:`interval_record` holds; None stays None."""
    if record is None:
        return None
    rate = record["successes"] / record["episodes"]
    return RateInterval(rate, record["low"], record["high"], record["episodes"], record["confidence"])


def with_interval(rates: dict[str, Any]) -> dict[str, Any]:
    """``rates`` with its ``success_interval`` (computed from its counts) added."""
    return rates | {"success_interval": interval_record(rate_interval(rates))}


def percent_text(interval: RateInterval | None, unit: str = "") -> str:
    """``21.54 [13.3, 33.0]``: the rate and its interval in percent (``unit`` after the rate, e.g. ``" %"``);
    ``-`` for a rate over no episodes."""
    if interval is None:
        return "-"
    return f"{100 * interval.rate:.2f}{unit} [{100 * interval.low:.1f}, {100 * interval.high:.1f}]"


def rate_text(rates: Mapping[str, Any], unit: str = "") -> str:
    """:func:`percent_text` of a rate record."""
    return percent_text(rate_interval(rates), unit)


def summary_with_intervals(summary: dict[str, Any]) -> dict[str, Any]:
    """A run's summary with every success rate's interval: the evaluation's (overall and per task type) and the
    first and last RL iterations'. Fields already there are recomputed from the counts, so old and new
    summaries come out alike."""
    completed = dict(summary)
    if "eval" in summary:
        evaluation = with_interval(summary["eval"])
        evaluation["per_task_type"] = {name: with_interval(row) for name, row in summary["eval"]["per_task_type"].items()}
        completed["eval"] = evaluation
    rl = summary.get("rl")
    if rl and rl.get("iterations"):
        completed["rl"] = rl | {
            f"{which}_iteration_success_interval": interval_record(
                iteration_interval(rl[f"{which}_iteration_success_rate"], rl["episodes_per_iteration"])
            )
            for which in ("first", "last")
        }
    return completed
