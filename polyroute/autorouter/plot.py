"""The cost–quality plot (PNG). matplotlib is optional: without it the plot is skipped."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Sequence
from pathlib import Path

from polyroute.autorouter.evaluate import TableReport

_STYLE = {
    "router": ("tab:blue", "-"),
    "random mix": ("tab:gray", "--"),
    "per-task best": ("tab:green", ":"),
    "oracle": ("tab:red", "-."),
}


def can_plot() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def write_plot(reports: Sequence[TableReport], path: Path | str) -> None:
    matplotlib = importlib.import_module("matplotlib")  # optional: typed loosely on purpose
    matplotlib.use("Agg")  # no display on a server
    plt = importlib.import_module("matplotlib.pyplot")

    fig, axes = plt.subplots(1, len(reports), figsize=(6.5 * len(reports), 5), squeeze=False)
    for ax, r in zip(axes[0], reports, strict=True):
        for name, (color, style) in _STYLE.items():
            hull = r.curves[name]
            if len(hull):
                ax.plot(hull[:, 0], hull[:, 1], style, color=color, label=name)
        ax.scatter(r.router_points[:, 0], r.router_points[:, 1], s=6, color="tab:blue",
                   alpha=0.4)
        for model, (q, c) in r.single.items():
            ax.scatter([c.value], [q.value], color="black", s=18, zorder=3)
            ax.annotate(model.rsplit("/", 1)[-1], (c.value, q.value), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
        # Linear cost: mixing two operating points at random is a straight line only here.
        ax.set_xlabel("USD per prompt")
        ax.set_ylabel("quality (mean score)")
        ax.set_title(f"{r.source}: {r.prompts} held-out prompts")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
