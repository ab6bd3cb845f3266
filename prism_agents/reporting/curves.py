"""``training_curves.png``: a run's training as it went, from ``metrics.jsonl``.

One panel per logged series that a run has: the SFT loss on action tokens per optimizer step (the
``sft`` stage and the re-probe's second SFT pass), and per RL iteration the success rate and mean
score of the iteration's own sampled episodes. Steps and iterations are whole numbers on the x axis;
success and score are percentages on a fixed 0-100 axis, the success rate with its 95 % Wilson
interval as a band (an error bar where there is a single iteration).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.ticker import MaxNLocator

from prism_agents.io import read_jsonl
from prism_agents.reporting.figures import plt, save_png
from prism_agents.reporting.rates import INTERVAL_NOTE, iteration_interval

CURVES_FILE = "training_curves.png"


@dataclass(frozen=True)
class Panel:
    """One series of ``metrics.jsonl`` drawn as one panel."""

    stage: str
    """The ``stage`` of the records drawn."""
    value: str
    """The record key plotted against ``step``."""
    title: str
    """The panel's title (the split is appended)."""
    x_label: str
    """What a step is."""
    percent: bool = False
    """A fraction in [0, 1], drawn x100 on a fixed 0-100 axis."""
    interval: bool = False
    """A success rate over the record's ``episodes``: drawn with its Wilson interval."""


PANELS = (
    Panel("sft", "loss", "SFT loss (action tokens)", "optimizer step"),
    Panel("reprobe", "loss", "re-probe SFT loss (action tokens)", "optimizer step"),
    Panel("rl", "success_rate", "RL episodes: success rate (%)", "iteration", percent=True, interval=True),
    Panel("rl", "mean_score", "RL episodes: mean score (x100)", "iteration", percent=True),
)
"""Each panel drawn when the run logged its series."""


def write_training_curves(metrics: Path, path: Path) -> bool:
    """Draw the panels ``metrics`` has data for into ``path``; False (and nothing written) when it has none."""
    figure = training_figure(metrics)
    if figure is None:
        return False
    save_png(figure, path)
    return True


def training_figure(metrics: Path) -> plt.Figure | None:
    """One panel per series ``metrics`` (a ``metrics.jsonl``) has; None when it has none."""
    series: dict[Panel, list[dict[str, Any]]] = defaultdict(list)
    for record in read_jsonl(metrics) if metrics.is_file() else []:
        for panel in PANELS:
            if record["stage"] == panel.stage and panel.value in record:
                series[panel].append(record)
    panels = [panel for panel in PANELS if series.get(panel)]
    if not panels:
        return None
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), dpi=100, squeeze=False)
    for axis, panel in zip(axes[0], panels):
        _draw(axis, panel, series[panel])
    figure.tight_layout()
    return figure


def _draw(axis: plt.Axes, panel: Panel, records: list[dict[str, Any]]) -> None:
    steps = [record["step"] for record in records]
    scale = 100 if panel.percent else 1
    values = [scale * record[panel.value] for record in records]
    axis.plot(steps, values, marker="o" if len(steps) < 20 else None, markersize=3, clip_on=False)
    if panel.interval:
        _draw_interval(axis, steps, records, panel.value)
    split = records[-1].get("split", "")
    axis.set_title(f"{panel.title}, {split} split" if split else panel.title, fontsize=9)
    axis.set_xlabel(panel.x_label)
    axis.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    axis.set_xlim(min(steps) - 0.5, max(steps) + 0.5)
    if panel.percent:
        axis.set_ylim(0, 100)
    axis.grid(alpha=0.3)


def _draw_interval(axis: plt.Axes, steps: list[int], records: list[dict[str, Any]], value: str) -> None:
    """The band of each step's Wilson interval over its ``episodes`` (records that do not count them get none)."""
    counted = [(step, record) for step, record in zip(steps, records) if record.get("episodes")]
    if not counted:
        return
    intervals = [iteration_interval(record[value], int(record["episodes"])) for _, record in counted]
    x = [step for step, _ in counted]
    low, high = [100 * i.low for i in intervals], [100 * i.high for i in intervals]
    if len(x) == 1:
        rate = 100 * intervals[0].rate
        axis.errorbar(x, [rate], yerr=[[rate - low[0]], [high[0] - rate]], fmt="none", capsize=4, alpha=0.5, clip_on=False)
    else:
        axis.fill_between(x, low, high, alpha=0.2, linewidth=0)
    episodes = "/".join(sorted({str(i.n) for i in intervals}, key=int))
    shape = "bar" if len(x) == 1 else "band"
    axis.set_ylabel(f"{shape}: {INTERVAL_NOTE} ({episodes} episodes)", fontsize=7)
