"""``pareto.png``: each variant's success rate against its training compute, with the Pareto front.

Each point is the variant's success over all seeds' episodes pooled (with equal episodes per seed, the mean
over seeds), its error bar that rate's 95 % Wilson interval.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.ticker import NullFormatter

from prism_agents.reporting.figures import plt, save_png
from prism_agents.reporting.rates import INTERVAL_NOTE, rate_interval

LOG_SCALE_RANGE = 20
"""A cost axis is logarithmic when its largest value is more than this many times its smallest."""
AXES = (("training_flops", "training compute (estimated FLOPs)"), ("training_wall_clock_s", "training wall clock (s)"))


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats (less or equal cost and higher success, or equal success
    and less cost), ordered by cost."""
    front = [
        i
        for i, (cost, success) in enumerate(points)
        if not any(
            (c <= cost and s > success) or (c < cost and s >= success) for j, (c, s) in enumerate(points) if j != i
        )
    ]
    return sorted(front, key=lambda i: points[i][0])


def write_pareto_plot(results: dict[str, Any], path: Path) -> None:
    """Write :func:`pareto_figure` of ``results`` to ``path``."""
    save_png(pareto_figure(results), path)


def pareto_figure(results: dict[str, Any]) -> plt.Figure:
    """Success rate on the first evaluation split, with its interval, against training FLOPs and wall clock,
    one panel each."""
    split = next(iter(results["splits"]))
    names = list(results["variants"])
    intervals = [rate_interval(results["variants"][name]["evaluation"][split]["pooled_success"]) for name in names]
    success = [100 * interval.rate for interval in intervals]
    errors = [[100 * (i.rate - i.low) for i in intervals], [100 * (i.high - i.rate) for i in intervals]]
    figure, panels = plt.subplots(1, len(AXES), figsize=(11, 4.5), dpi=110)
    for panel, (measure, label) in zip(panels, AXES):
        cost = [results["variants"][name]["compute"][measure] for name in names]
        panel.errorbar(cost, success, yerr=errors, fmt="o", capsize=3, clip_on=False)
        for index, (name, x, y) in enumerate(zip(names, cost, success)):
            # staggered labels stay readable when variants cost about the same
            panel.annotate(name, (x, y), textcoords="offset points", xytext=(5, 5 + 11 * (index % 3)), fontsize=8)
        front = pareto_front(list(zip(cost, success)))
        panel.step([cost[i] for i in front], [success[i] for i in front], where="post", linestyle="--", alpha=0.6)
        if min(cost) > 0 and max(cost) > LOG_SCALE_RANGE * min(cost):
            panel.set_xscale("log")
            panel.xaxis.set_minor_formatter(NullFormatter())
        panel.set_ylim(0, 100)
        panel.set_xlabel(label)
        panel.set_ylabel(f"success rate on {split} (%)")
        panel.grid(alpha=0.3)
    seeds = len(results["seeds"])
    episodes = "/".join(sorted({str(i.n) for i in intervals}, key=int))
    figure.suptitle(
        f"{results['comparison']}: success vs training compute ({episodes} episodes over {seeds} seed(s) pooled; "
        f"bars: {INTERVAL_NOTE})",
        fontsize=10,
    )
    figure.tight_layout()
    return figure
