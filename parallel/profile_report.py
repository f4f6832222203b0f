"""`ProfileReport`: what `parallel.profile` measured, as text, a picture and a page.

The bottleneck is the stage that takes the largest share of the workers' stage time,
named as `print_summary` names it; the sentence that names it also says what to change
(NOTE [ Which fix the profile suggests ]).

NOTE [ Which fix the profile suggests ]
When the consumer hardly waited (under 5 % of the time) the input keeps up and nothing
needs changing. Otherwise: more workers, when more would run (up to the CPU budget, or
more for stages that wait on I/O rather than compute: the workers' CPU demand, read from
``/proc`` as ``workers="auto"`` reads it); caching with ``seq.cache(...)`` when the slow
stage is deterministic and comes before the first random transform (caching stores
everything before it); a larger shared-memory directory when the workers spent over a
fifth of their busy time waiting for segments.
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass, field
from typing import Any

WAIT_TO_ACT = 0.05
BLOCKED_TO_ACT = 0.2
# What recording stages may cost, as a share of a worker's batch time (NOTE [ Sampled
# recording ] in parallel/profile.py).
RECORDING_BUDGET = 0.01


@dataclass(frozen=True)
class StageProfile:
    """One stage: milliseconds per batch, share of the workers' stage time, and the
    bytes of one batch going in and out (``None``: not an array batch)."""

    name: str
    kind: str
    random: bool
    ms_per_batch: float
    share: float
    bytes_in: int | None
    bytes_out: int | None


@dataclass(frozen=True)
class WorkerProfile:
    """One worker process over the profile: seconds computing, waiting for a
    shared-memory segment (part of busy), and idle (alive, no batch to compute)."""

    pid: int
    busy_s: float
    blocked_s: float
    idle_s: float
    batches: int


@dataclass(frozen=True)
class Timeline:
    """Absolute times (``time.monotonic``) for the timeline: per worker pid, each batch's
    stages as ``(stage position, start, seconds)``; the consumer's waits as
    ``(start, seconds)``; and the time the profile's window begins."""

    origin: float
    stages: dict[int, list[tuple[int, float, float]]]
    consumer_waits: list[tuple[float, float]]


@dataclass
class ProfileReport:
    """What `parallel.profile` measured (see there): the stages, the workers, the
    consumer's waits, the timeline, and ``workers="auto"``'s decisions.

    Example:
        >>> report = profile(seq, batches=200, workers=2)  # doctest: +SKIP
        >>> report.bottleneck, f"{report.throughput:.0f} batches/s"  # doctest: +SKIP
        ('Resize(size=(200, 200), on=0)', '412 batches/s')
        >>> report.plot("profile.png"); page = report.to_html()  # doctest: +SKIP
    """

    stages: list[StageProfile]
    workers: list[WorkerProfile]
    worker_setting: str
    batches: int
    seconds: float
    startup_s: float
    consumer_wait_s: float
    cpu_demand: float
    cpu_budget: int
    max_queue_size: int
    overhead_us: float
    recorded: int
    timeline: Timeline
    decisions: list[Any] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        """Batches per second delivered to the consumer over the profile's window."""
        return self.batches / self.seconds if self.seconds > 0 else 0.0

    @property
    def wait_fraction(self) -> float:
        """Share of the window the consumer waited for a batch."""
        return self.consumer_wait_s / self.seconds if self.seconds > 0 else 0.0

    @property
    def bottleneck(self) -> str:
        """The stage with the largest share of worker time, named as `print_summary`
        names it."""
        return max(self.stages, key=lambda s: s.share).name

    @property
    def overhead_fraction(self) -> float:
        """The stage recording's cost over the workers' time per batch, counting the
        batches whose recording was skipped (``recorded`` of ``batches`` were recorded)."""
        busy = sum(w.busy_s for w in self.workers)
        per_batch = busy / max(1, sum(w.batches for w in self.workers))
        if per_batch <= 0:
            return 0.0
        return self.overhead_us * 1e-6 * self.recorded / max(1, self.batches) / per_batch

    def advice(self) -> str:
        """The sentence naming the bottleneck and the fix (NOTE [ Which fix the profile
        suggests ])."""
        stage = max(self.stages, key=lambda s: s.share)
        head = f"{stage.name} takes {100 * stage.share:.0f} % of worker time"
        if self.wait_fraction < WAIT_TO_ACT:
            return (
                f"{head}, but the input keeps up: the consumer waited "
                f"{100 * self.wait_fraction:.0f} % of the time, so nothing needs changing."
            )
        fixes = []
        suggested = self.suggested_workers()
        if suggested > len(self.workers):
            fixes.append(f"raise workers to {suggested}")
        fixes.extend(self._cache_fix(stage))
        busy = sum(w.busy_s for w in self.workers)
        if busy and sum(w.blocked_s for w in self.workers) / busy > BLOCKED_TO_ACT:
            fixes.append("give shared memory more room (SEQPIPE_SHM_DIR or --shm-size)")
        if not fixes:
            fixes.append(f"make {stage.name} cheaper: the workers use the CPUs they have")
        return f"{head}: {' or '.join(fixes)}."

    def suggested_workers(self) -> int:
        """Workers that would stop the consumer's waits, within the CPU budget (more
        for I/O-bound stages) and ``max_queue_size``."""
        current = max(1, len(self.workers))
        wanted = math.ceil(current / max(1.0 - self.wait_fraction, 1e-3))
        cap = self.cpu_budget
        if self.cpu_demand < 0.5:  # waits on I/O: CPUs fit more of them
            cap = math.floor(self.cpu_budget / max(self.cpu_demand, 1 / self.max_queue_size))
        return max(current, min(wanted, cap, self.max_queue_size))

    def _cache_fix(self, stage: StageProfile) -> list[str]:
        if stage.random or stage.kind == "shard":
            return []
        randoms = [s for s in self.stages if s.random]
        if not randoms:
            return ["cache the pipeline with `seq.cache(...)`"]
        first = self.stages.index(randoms[0])
        if self.stages.index(stage) > first:
            return []
        return [f"cache the stages before {randoms[0].name} with `seq.cache(...)`"]

    def lines(self) -> list[str]:
        """The report as text lines (`str` joins them)."""
        rate = self.throughput
        out = [
            f"Input profile: {self.batches} batches in {self.seconds:.2f} s "
            f"({rate:.1f} batches/s) with workers={self.worker_setting} "
            f"({len(self.workers)} at the end); first batch after {self.startup_s:.2f} s",
            f"Bottleneck: {self.advice()}",
            "",
            f"{'Stage':<46} {'ms/batch':>9} {'share':>7} {'bytes in':>12} {'bytes out':>12}",
        ]
        for s in self.stages:
            out.append(
                f"{_cut(s.name, 46):<46} {s.ms_per_batch:>9.3f} {100 * s.share:>6.1f}% "
                f"{_bytes(s.bytes_in):>12} {_bytes(s.bytes_out):>12}"
            )
        out += [
            "",
            f"{'Worker pid':<12} {'busy s':>8} {'blocked s':>10} {'idle s':>8} {'batches':>8}",
        ]
        for w in self.workers:
            out.append(
                f"{w.pid:<12} {w.busy_s:>8.2f} {w.blocked_s:>10.2f} {w.idle_s:>8.2f} {w.batches:>8}"
            )
        out += [
            "",
            f"Consumer: waited {self.consumer_wait_s:.2f} s of {self.seconds:.2f} s "
            f"({100 * self.wait_fraction:.0f} %)",
            f"Workers' CPU demand: {100 * self.cpu_demand:.0f} % of their busy time "
            f"(CPU budget {self.cpu_budget})",
            f"Profiling overhead: recording the stages costs {self.overhead_us:.1f} us a "
            f"batch in the workers, recorded on {self._recorded_share()} "
            f"({100 * self.overhead_fraction:.2f} % of their time)",
        ]
        if self.decisions:
            out += ["", "workers='auto' decisions:", *(f"  {d}" for d in self.decisions)]
        return out

    def _recorded_share(self) -> str:
        if self.recorded >= self.batches:
            return "every batch"
        return (
            f"{self.recorded} of {self.batches} batches (each recording would cost over "
            f"{100 * RECORDING_BUDGET:.0f} % of a batch)"
        )

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def plot(self, path: str, dpi: int = 110) -> None:
        """Draws the timeline (a row per worker and the consumer, batches coloured by
        stage) and a stacked bar of stage shares to ``path`` (PNG, SVG, PDF) with
        matplotlib.

        Raises:
            ImportError: if matplotlib is not installed (naming the extra to install).
        """
        from .profile_plot import draw

        draw(self, path, dpi)

    def to_html(self, path: str | None = None) -> str:
        """One self-contained page: the text report, the plot embedded as a PNG
        (base64), and the tables.

        Args:
            path: where to write the page too (else only returned).

        Returns:
            The page.
        """
        from .profile_plot import png_bytes

        image = base64.b64encode(png_bytes(self)).decode("ascii")
        rows = "".join(
            f"<tr><td>{html.escape(s.name)}</td><td>{s.ms_per_batch:.3f}</td>"
            f"<td>{100 * s.share:.1f} %</td><td>{_bytes(s.bytes_in)}</td>"
            f"<td>{_bytes(s.bytes_out)}</td></tr>"
            for s in self.stages
        )
        page = _PAGE.format(
            advice=html.escape(self.advice()),
            image=image,
            rows=rows,
            text=html.escape(str(self)),
        )
        if path is not None:
            with open(path, "w", encoding="utf-8") as f:
                f.write(page)
        return page


def _bytes(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>seqpipe input profile</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 1200px; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 4px 8px; }}
td:not(:first-child) {{ text-align: right; }}
pre {{ background: #f6f6f6; padding: 1em; white-space: pre-wrap; }}
img {{ max-width: 100%; }}
</style></head><body>
<h1>Input profile</h1>
<p><strong>{advice}</strong></p>
<img alt="timeline of workers and consumer, and stage shares" src="data:image/png;base64,{image}">
<h2>Stages</h2>
<table><tr><th>stage</th><th>ms/batch</th><th>share</th><th>bytes in</th><th>bytes out</th></tr>
{rows}</table>
<h2>Report</h2>
<pre>{text}</pre>
</body></html>
"""
