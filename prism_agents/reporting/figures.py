"""Matplotlib set up for files only (no display), and figures written atomically as PNG."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

from prism_agents.io import write_bytes_atomic  # noqa: E402

__all__ = ["plt", "save_png"]


def save_png(figure: plt.Figure, path: Path) -> None:
    """Write ``figure`` to ``path`` as PNG (no software or date metadata, so equal figures give equal files)
    and close it."""
    image = io.BytesIO()
    figure.savefig(image, format="png", metadata={"Software": None})
    plt.close(figure)
    write_bytes_atomic(path, image.getvalue())
