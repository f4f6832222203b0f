"""The picture of a `ProfileReport`, drawn with matplotlib (imported here, when used).

Top: a timeline, one row per worker process and one for the consumer; each batch a bar
per stage, coloured by stage, so a slow stage shows as a wide band of its colour and an
idle worker as gaps (when batches are too cheap to record each, only the recorded ones
are drawn, and the axis label says so). The consumer's row shows when it waited for a
batch; dashed lines mark the changes of ``workers="auto"``. Bottom: one bar, the
stages' shares of the workers' stage time stacked, in the same colours.
"""

from __future__ import annotations

import io
from typing import Any

WAIT_COLOUR = "#9e9e9e"


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError(
            "ProfileReport.plot and to_html draw with matplotlib: "
            "pip install 'seqpipe[profile]' (or pip install matplotlib)"
        ) from error
    matplotlib.use("Agg", force=False)  # files only: no display needed
    import matplotlib.pyplot as plt

    return plt


def _figure(report: Any) -> Any:
    plt = _pyplot()
    stages = report.stages
    colours = plt.get_cmap("tab10" if len(stages) <= 10 else "tab20").colors
    colour = {i: colours[i % len(colours)] for i in range(len(stages))}
    timeline = report.timeline
    pids = sorted(timeline.stages)
    rows = len(pids) + 1
    fig, (top, bottom) = plt.subplots(
        2,
        1,
        figsize=(12, 2.2 + 0.45 * rows + 0.25 * len(stages)),
        gridspec_kw={"height_ratios": [max(2.0, 0.45 * rows), 0.6]},
    )
    for row, pid in enumerate(pids, start=1):
        by_stage: dict[int, list[tuple[float, float]]] = {}
        for position, start, seconds in timeline.stages[pid]:
            by_stage.setdefault(position, []).append((start - timeline.origin, seconds))
        for position, bars in by_stage.items():
            top.broken_barh(bars, (row - 0.4, 0.8), facecolors=colour[position])
    waits = [(start - timeline.origin, seconds) for start, seconds in timeline.consumer_waits]
    top.broken_barh(waits, (-0.4, 0.8), facecolors=WAIT_COLOUR)
    for decision in report.decisions:  # workers="auto": when the count changed
        x = decision.seconds - report.startup_s
        if 0 <= x <= report.seconds:
            top.axvline(x, color="black", linestyle="--", linewidth=0.8)
            top.text(x, rows - 0.45, f" {decision.after} workers", fontsize=8, va="top")
    top.set_yticks(
        range(rows),
        ["consumer\n(grey: waiting)", *(f"worker {i}\npid {pid}" for i, pid in enumerate(pids, 1))],
    )
    top.set_ylim(-0.6, rows - 0.4)
    top.invert_yaxis()
    top.set_xlim(0, report.seconds)
    sampled = (
        ""
        if report.recorded >= report.batches
        else (
            f" (stages of {report.recorded} of the {report.batches} batches drawn: "
            "the rest were computed without recording, each cheaper than its recording)"
        )
    )
    top.set_xlabel("seconds since the first batch arrived" + sampled)
    top.grid(axis="x", alpha=0.3)
    top.set_title(
        f"{report.batches} batches, {report.throughput:.1f} batches/s, "
        f"workers={report.worker_setting}; consumer waited {100 * report.wait_fraction:.0f} %"
        f"\n{_wrap(report.advice(), 140)}",
        fontsize=10,
        loc="left",
    )
    left = 0.0
    for i, stage in enumerate(stages):
        share = 100 * stage.share
        bottom.barh(0, share, left=left, color=colour[i], label=f"{stage.name} ({share:.1f} %)")
        if share >= 6:
            bottom.text(left + share / 2, 0, f"{share:.0f} %", ha="center", va="center", fontsize=9)
        left += share
    bottom.set_xlim(0, 100)
    bottom.set_yticks([0], ["share of\nworker time"])
    bottom.set_xlabel("% of the workers' time in stages")
    bottom.legend(loc="upper left", bbox_to_anchor=(0, -0.75), ncol=2, fontsize=9, frameon=False)
    fig.tight_layout()
    return fig


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


def draw(report: Any, path: Any, dpi: int = 110) -> None:
    """Saves the report's picture to ``path`` (the extension picks the format; a file
    object gets a PNG)."""
    plt = _pyplot()
    fig = _figure(report)
    kind = None if isinstance(path, str) else "png"
    try:
        fig.savefig(path, dpi=dpi, bbox_inches="tight", format=kind)
    finally:
        plt.close(fig)


def png_bytes(report: Any, dpi: int = 110) -> bytes:
    """The report's picture as PNG bytes (for the page of `ProfileReport.to_html`)."""
    buffer = io.BytesIO()
    draw(report, buffer, dpi)  # savefig takes a file object as well as a path
    return buffer.getvalue()
