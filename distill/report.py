"""What users look at rather than read: markdown tables for the terminal, percentile
summaries, and PNG plots (bar charts, histograms, curves) written next to the JSON reports.

Plots are drawn on standalone figures (no pyplot state, any backend); every plot
function writes one PNG and returns its path.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from distill.errors import OutputError


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-style markdown table with aligned columns (numbers right-aligned)."""
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 1000 else f"{value:,.0f}"
        if isinstance(value, int) and not isinstance(value, bool):
            return f"{value:,}"
        return str(value)

    table = [[cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in table]) for i, h in enumerate(headers)]
    numeric = [all(isinstance(row[i], (int, float)) and not isinstance(row[i], bool) for row in rows) and bool(rows)
               for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.rjust(w) if n else v.ljust(w) for v, w, n in zip(values, widths, numeric)) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if n else ("-" * (w + 2)) for w, n in zip(widths, numeric)) + "|"
    return "\n".join([line(headers), rule, *(line(r) for r in table)])


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """count, mean, min, p10, p50, p90, p99, max of `values` (just the count when there are none)."""
    if not values:
        return {"count": 0}
    ordered = sorted(values)
    n = len(ordered)

    def at(q: float) -> float:
        return ordered[min(n - 1, int(q * n))]

    return {"count": n, "mean": round(statistics.fmean(ordered), 4), "min": ordered[0], "p10": at(0.10),
            "p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "max": ordered[-1]}


def new_figure(figsize: tuple[float, float]) -> tuple[Any, Any]:
    """A figure and its axes, without pyplot: no backend is switched and no global state is touched,
    so a notebook's own `plt.show()` keeps working after a distill plot."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots()


def save_bar(path: str | Path, values: Mapping[str, float], *, title: str, xlabel: str = "") -> Path:
    """Horizontal bars, largest first (e.g. reject reasons)."""
    items = sorted(values.items(), key=lambda kv: kv[1])
    fig, ax = new_figure((7, max(2.0, 0.45 * len(items) + 1)))
    bars = ax.barh([k for k, _ in items], [v for _, v in items], color="#4C72B0")
    ax.bar_label(bars, labels=[f"{v:,.0f}" if float(v).is_integer() else f"{v:.3g}" for _, v in items], padding=3)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.margins(x=0.15)
    return _save(fig, path)


def save_histogram(path: str | Path, series: Mapping[str, Sequence[float]], *, title: str, xlabel: str,
                   bins: int = 40, vline: float | None = None, vline_label: str | None = None) -> Path:
    """Overlaid histograms on shared bins (e.g. lengths of kept vs rejected traces)."""
    fig, ax = new_figure((7, 4))
    everything = [v for values in series.values() for v in values]
    if everything:
        low, high = min(everything), max(everything)
        edges = [low + (high - low) * i / bins for i in range(bins + 1)] if high > low else bins
        for label, values in series.items():
            if values:
                ax.hist(values, bins=edges, alpha=0.6, label=f"{label} ({len(values):,})")
    if vline is not None:
        ax.axvline(vline, color="black", linestyle="--", linewidth=1, label=vline_label)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    if series or vline_label:
        ax.legend()
    return _save(fig, path)


def save_completion_lengths(path: str | Path, tokens: Sequence[int], *, max_tokens: int) -> Path:
    """The histogram of a traces file's completion lengths, with the --max-tokens line (samples at it were cut)."""
    return save_histogram(path, {"completions": tokens}, title="completion length", xlabel="completion tokens",
                          vline=max_tokens, vline_label=f"--max-tokens {max_tokens:,}")


def save_curves(path: str | Path, series: Mapping[str, tuple[Sequence[float], Sequence[float]]], *,
                title: str, xlabel: str, ylabel: str, logy: bool = False) -> Path:
    """Line plots sharing axes (e.g. training loss per step)."""
    fig, ax = new_figure((7, 4))
    for label, (xs, ys) in series.items():
        ax.plot(xs, ys, label=label, linewidth=1.5)
    if logy:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend()
    return _save(fig, path)


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}; free some space or choose another location, "
                          "then rerun the same command") from None
    return path
