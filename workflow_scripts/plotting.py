"""Figures of every stage: one backend, one way to save.

Stages import ``plt`` from here, so the non-interactive Agg backend is set
before pyplot loads (rules run without a display), and write every figure
with :func:`save`: fixed resolution and PNG metadata without the matplotlib
version, so the same results give byte-identical files.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["PNG_METADATA", "plt", "save"]

#: No "Software" entry: the PNG bytes do not depend on the matplotlib version.
PNG_METADATA = {"Software": None}
DPI = 110


def save(fig, path, tight: bool = True) -> None:
    """Write ``fig`` as a PNG (trimmed to its content when ``tight``) and close it."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight" if tight else None, metadata=PNG_METADATA)
    plt.close(fig)
