"""``training_curves.png``: a run's training as it went, from ``metrics.jsonl``.

One panel per logged series that a run has: the SFT loss on action tokens per optimizer step (the
``sft`` stage and the re-probe's second SFT pass), and per RL iteration the success rate and mean
score of the iteration's own sampled episodes.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from prism_agents.io import read_jsonl
from prism_agents.reporting.figures import plt, save_png

CURVES_FILE = "training_curves.png"
PANELS = (
    ("sft", "loss", "SFT loss (action tokens)", "optimizer step"),
    ("reprobe", "loss", "re-probe SFT loss (action tokens)", "optimizer step"),
    ("rl", "success_rate", "RL episodes: success rate", "iteration"),
    ("rl", "mean_score", "RL episodes: mean score", "iteration"),
)
"""(stage, value, title, x label) of each panel drawn when the run logged it."""


def write_training_curves(metrics: Path, path: Path) -> bool:
    """Draw the panels ``metrics`` has data for into ``path``; False (and nothing written) when it has none."""
    series: dict[tuple[str, str], list[tuple[int, float]]] = defaultdict(list)
    splits: dict[str, str] = {}
    for record in read_jsonl(metrics) if metrics.is_file() else []:
        for stage, value, _, _ in PANELS:
            if record["stage"] == stage and value in record:
                series[(stage, value)].append((record["step"], record[value]))
                splits[stage] = record.get("split", "")
    panels = [panel for panel in PANELS if series.get(panel[:2])]
    if not panels:
        return False
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), dpi=100, squeeze=False)
    for axis, (stage, value, title, x_label) in zip(axes[0], panels):
        steps, values = zip(*series[(stage, value)])
        axis.plot(steps, values, marker="o" if len(steps) < 20 else None, markersize=3)
        axis.set_title(f"{title}, {splits[stage]} split" if splits[stage] else title, fontsize=9)
        axis.set_xlabel(x_label)
        axis.grid(alpha=0.3)
    figure.tight_layout()
    save_png(figure, path)
    return True
