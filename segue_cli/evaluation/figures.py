"""PNG figures of an evaluation, drawn from its results record (matplotlib, Agg: no display)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 (after choosing the backend)
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402

from ..storage import atomic_write  # noqa: E402

RESIDUAL_GAIN = 30
COLOURS = {"clean": "#4C72B0", "protected": "#C44E52"}


def _save(fig: plt.Figure, path: Path) -> None:
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


def _label(run: dict[str, Any]) -> str:
    return f"{run['arch']} / {run['attack']}"


def accuracy_per_epoch(results: dict[str, Any], path: Path) -> None:
    """Clean-test accuracy after every epoch: baseline dashed, protected solid."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    trained = [r for r in results["runs"] if r["history"]]  # embedding attackers have no epochs
    keys = sorted({(r["arch"], r["attack"]) for r in trained}, key=lambda k: (k[0], k[1]))
    for i, key in enumerate(keys):
        for run in (r for r in trained if (r["arch"], r["attack"]) == key):
            epochs = [h["epoch"] for h in run["history"]]
            accs = [h["test_accuracy"] for h in run["history"]]
            style = "--" if run["train_set"] == "clean" else "-"
            ax.plot(epochs, accs, style, color=cycle[i % len(cycle)], marker="o", markersize=3,
                    label=f"{_label(run)} ({'clean baseline' if run['train_set'] == 'clean' else 'protected'})")
    ax.axhline(results["chance_accuracy"], color="grey", linewidth=1, linestyle=":", label="chance")
    ax.set(xlabel="epoch", ylabel="clean-test accuracy (%)", ylim=(0, 100), title="Attacker accuracy on clean test photos")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    _save(fig, path)


def accuracy_bars(results: dict[str, Any], path: Path, by: str) -> None:
    """Final clean-test accuracy, baseline vs protected, one group per ``by`` value
    ("arch" or "attack"); the other variable is held at its first value."""
    runs = results["runs"]
    held_key = "attack" if by == "arch" else "arch"
    held = runs[0][held_key] if runs else ""
    groups = list(dict.fromkeys(r[by] for r in runs if r[held_key] == held))
    fig, ax = plt.subplots(figsize=(max(4.5, 1.3 * len(groups) + 2), 4.2))
    width = 0.38
    for offset, train_set in ((-width / 2, "clean"), (width / 2, "protected")):
        values = []
        for group in groups:
            match = [r for r in runs if r[by] == group and r[held_key] == held and r["train_set"] == train_set]
            values.append(match[0]["final_accuracy"] if match else np.nan)
        positions = np.arange(len(groups)) + offset
        bars = ax.bar(positions, values, width, color=COLOURS[train_set],
                      label="clean baseline" if train_set == "clean" else "protected")
        for bar, value in zip(bars, values):
            if not np.isnan(value):
                ax.annotate(f"{value:.1f}", (bar.get_x() + bar.get_width() / 2, value), ha="center", va="bottom", fontsize=8)
    ax.axhline(results["chance_accuracy"], color="grey", linewidth=1, linestyle=":", label="chance")
    ax.set_xticks(np.arange(len(groups)), groups, rotation=20 if len(groups) > 4 else 0)
    title = "per attacker" if by == "arch" else "per counter-measure"
    ax.set(ylabel="final clean-test accuracy (%)", ylim=(0, 100), title=f"Accuracy {title} ({held_key}: {held})")
    ax.legend(fontsize=8)
    _save(fig, path)


def residual_strip(clean: np.ndarray, protected: np.ndarray, path: Path, captions: list[str]) -> None:
    """Rows: clean, protected, residual x30 around mid-grey. Arrays are N x H x W x 3 uint8."""
    count = len(clean)
    fig, axes = plt.subplots(3, count, figsize=(1.7 * count, 5.4), squeeze=False)
    residual = np.clip(0.5 + RESIDUAL_GAIN * (protected.astype(np.float64) - clean.astype(np.float64)) / 255, 0, 1)
    rows = (("clean", clean), ("protected", protected), (f"residual x{RESIDUAL_GAIN}", residual))
    for r, (name, images) in enumerate(rows):
        for c in range(count):
            ax = axes[r][c]
            ax.imshow(images[c])
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=9)
            if r == 0:
                ax.set_title(captions[c], fontsize=7)
    _save(fig, path)
