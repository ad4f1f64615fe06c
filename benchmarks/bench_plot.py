"""The benchmark plot: time per context manager against N, and the latency-bound case."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: render to a file

import matplotlib.pyplot as plt
from bench_harness import Stats

# One colour and marker per implementation, the same in both panels.
STYLES: dict[str, tuple[str, str]] = {
    "AsyncExitStack": ("black", "o"),
    "parallel_with": ("tab:blue", "s"),
    "ParallelExitStack": ("tab:cyan", "D"),
    "bare mechanism": ("tab:green", "^"),
    "start_soon floor": ("tab:olive", "v"),
    "split tasks": ("tab:red", "x"),
    "anyio-contextgroup": ("tab:purple", "P"),
}


def plot(
    path: Path,
    overhead: Mapping[int, Mapping[str, Stats]],
    latency: Mapping[str, Stats],
    ideal_ms: float,
    *,
    title: str,
    latency_title: str,
    other: Mapping[int, Mapping[str, Stats]] | None = None,
    other_label: str = "",
) -> None:
    """Write a two-panel PNG: µs per cm against N (log-log), and the latency case's wall time.

    ``other`` are overhead results of another process run (another Python), drawn dashed.
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 6.2), width_ratios=(1.25, 1))
    sizes = sorted(overhead)
    names = list(overhead[sizes[0]])
    for name in names:
        colour, marker = STYLES.get(name, ("grey", "."))
        medians = [overhead[n][name].median for n in sizes]
        lows = [overhead[n][name].median - overhead[n][name].low for n in sizes]
        highs = [overhead[n][name].high - overhead[n][name].median for n in sizes]
        left.errorbar(
            sizes, medians, yerr=[lows, highs], label=name, color=colour, marker=marker, capsize=3
        )
    if other:
        other_sizes = sorted(other)
        for name in other[other_sizes[0]]:
            colour, marker = STYLES.get(name, ("grey", "."))
            left.plot(
                other_sizes,
                [other[n][name].median for n in other_sizes],
                label=f"{name} ({other_label})",
                color=colour,
                marker=marker,
                linestyle="--",
                alpha=0.7,
            )
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("N (context managers entered and exited)")
    left.set_ylabel("µs per context manager (median; bars: min-max)")
    left.set_title("Overhead: trivial context managers")
    left.grid(True, which="both", alpha=0.3)
    handles, labels = left.get_legend_handles_labels()
    # This run's implementations first, then the other run's.
    ranked = sorted(range(len(labels)), key=lambda i: "(" in labels[i])
    left.legend(
        [handles[i] for i in ranked],
        [labels[i] for i in ranked],
        fontsize=8,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.13),
        ncol=3,
    )

    order = list(latency)
    medians = [latency[name].median for name in order]
    colours = [STYLES.get(name, ("grey", "."))[0] for name in order]
    bars = right.barh(order, medians, color=colours, alpha=0.8)
    right.bar_label(bars, labels=[f"{m:.1f} ms" for m in medians], padding=3, fontsize=8)
    right.axvline(ideal_ms, color="grey", linestyle=":", label=f"ideal {ideal_ms:g} ms")
    right.set_xscale("log")
    right.set_xlim(ideal_ms / 2, max(medians) * 4)
    right.invert_yaxis()
    right.set_xlabel("wall time, ms (median, log scale)")
    right.set_title(latency_title)
    right.legend(fontsize=8, loc="lower right")

    fig.suptitle(title, fontsize=10)  # pyright: ignore[reportUnknownMemberType]
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")  # pyright: ignore[reportUnknownMemberType]
    plt.close(fig)
