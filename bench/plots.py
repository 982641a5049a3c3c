"""Plots of a benchmark run, for docs/benchmarks.md: ``python bench/plots.py``.

Reads ``bench/results.json`` (what ``bench/run.py`` writes: rows with ``ours_ns`` and
``baseline_ns``, each min / median / max in ns, the ``baseline`` they were timed against and
the ``ratio``) and writes SVGs into ``docs/assets/bench/``:

- ``latency.svg``: our median against the baseline's for every row with a ratio, on a log
  scale (whiskers: min to max over the batches);
- ``relative.svg``: our median divided by the baseline's for the same rows, on a log scale
  (left of 1: faster than the baseline).

``bench/run.py`` calls it after writing the results (matplotlib is in ``nox -s bench``); the
SVGs carry no date and fixed ids, so an unchanged run rewrites the same files.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.json"
OUT = HERE.parent / "docs" / "assets" / "bench"

OURS, BASELINE = "#1f6fb4", "#b9b9b9"


def ratio_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows timed against a baseline, each labelled by its figure (a sub-row, indented in
    the table, by its parent's figure too) and what it was timed against."""
    rows, parent = [], ""
    for row in results["rows"]:
        figure = row["figure"]
        if not figure.startswith(" "):
            parent = figure
        if "ours_ns" not in row or "baseline_ns" not in row:
            continue
        name = figure.strip() if not figure.startswith(" ") else f"{parent}: {figure.strip()}"
        label = textwrap.fill(name, 48) + "\n" + textwrap.fill(f"vs {row['baseline']}", 48)
        rows.append({**row, "label": label})
    return rows


def _us(value_ns: float) -> float:
    return value_ns / 1000.0


def _figure(plt: Any, count: int, machine: str) -> tuple[Any, Any]:
    fig, ax = plt.subplots(figsize=(10, 0.62 * count + 1.4))
    ax.invert_yaxis()  # the table's order, top to bottom
    ax.grid(axis="x", which="major", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.text(0.01, 0.005, f"Machine: {machine}", fontsize=7, color="#666666")
    return fig, ax


def plot_latency(plt: Any, rows: list[dict[str, Any]], machine: str, path: Path) -> None:
    fig, ax = _figure(plt, len(rows), machine)
    height = 0.38
    for i, row in enumerate(rows):
        for offset, key, color, name in (
            (-height / 2, "ours_ns", OURS, "ours"),
            (height / 2, "baseline_ns", BASELINE, "baseline"),
        ):
            timing = row[key]
            median = _us(timing["median"])
            ax.barh(
                i + offset,
                median,
                height=height,
                color=color,
                label=name if i == 0 else None,
                xerr=[[median - _us(timing["min"])], [_us(timing["max"]) - median]],
                error_kw={"elinewidth": 0.7, "capsize": 2, "ecolor": "#444444"},
            )
    ax.set_xscale("log")
    ax.set_yticks(range(len(rows)), [row["label"] for row in rows], fontsize=7)
    ax.set_xlabel("median latency, µs (log scale; whiskers: min to max)")
    ax.set_title("Ours against the baseline timed in the same run", fontsize=11, loc="left")
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    _save(fig, path)


def plot_relative(plt: Any, rows: list[dict[str, Any]], machine: str, path: Path) -> None:
    fig, ax = _figure(plt, len(rows), machine)
    relative = [row["ours_ns"]["median"] / row["baseline_ns"]["median"] for row in rows]
    colors = [OURS if value <= 1 else "#d0752b" for value in relative]
    ax.barh(range(len(rows)), [value - 1 for value in relative], height=0.6, color=colors, left=1)
    for i, value in enumerate(relative):
        ax.annotate(
            f"{value:.2f}x",
            (value, i),
            xytext=(4 if value >= 1 else -4, 0),
            textcoords="offset points",
            ha="left" if value >= 1 else "right",
            va="center",
            fontsize=7,
        )
    ax.axvline(1.0, color="#333333", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlim(min([*relative, 1.0]) / 4, max([*relative, 1.0]) * 4)  # room for the labels
    ax.set_yticks(range(len(rows)), [row["label"] for row in rows], fontsize=7)
    ax.set_xlabel("our median / the baseline's median (log scale; left of 1: faster)")
    ax.set_title("Our cost relative to each baseline", fontsize=11, loc="left")
    _save(fig, path)


def _save(fig: Any, path: Path) -> None:
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    fig.savefig(path, format="svg", metadata={"Date": None})
    fig.clf()


def write_plots(results_path: Path = RESULTS, out: Path = OUT, prefix: str = "") -> list[Path]:
    """Write the SVGs of ``results_path`` into ``out`` (``prefix``: before their names, e.g.
    ``peers-`` for ``bench/peers.py``'s run); returns their paths. Raises ImportError when
    matplotlib is not installed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "smarter-domain", "svg.fonttype": "none", "font.size": 8})
    results = json.loads(results_path.read_text())
    rows = ratio_rows(results)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / f"{prefix}latency.svg", out / f"{prefix}relative.svg"]
    plot_latency(plt, rows, results.get("machine", ""), written[0])
    plot_relative(plt, rows, results.get("machine", ""), written[1])
    plt.close("all")
    return written


def main(argv: list[str]) -> int:
    results_path = Path(argv[0]) if argv else RESULTS
    out = Path(argv[1]) if len(argv) > 1 else OUT
    for path in write_plots(results_path, out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
