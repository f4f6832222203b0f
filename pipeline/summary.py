"""`print_summary`: a Keras model's summary, or a pipeline's stage table."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from collections.abc import Sequence as Seq
from typing import Any

from .pipeline import Pipeline
from .sequence import Sequence
from .stages import Stage, as_pipeline, dtypes, nbytes, shapes, trace

HEADER = ("Stage", "Output shape", "Dtype", "Bytes/batch", "ms/batch")
DEFAULT_POSITIONS = (0.38, 0.62, 0.79, 0.9, 1.0)


def _columns(line_length: int, positions: Seq[float] | None) -> list[int]:
    positions = list(positions or DEFAULT_POSITIONS)
    if len(positions) != len(HEADER):
        raise ValueError(
            f"positions must give the right edge of each of the {len(HEADER)} columns "
            f"{HEADER}. Received: positions={positions}"
        )
    if positions[-1] <= 1:  # relative, as in Keras
        positions = [int(line_length * p) for p in positions]
    return [int(p) for p in positions]


def _row(fields: Seq[Any], positions: list[int]) -> str:
    # Keras' layout: each field is cut at its column's right edge, one space apart.
    line = ""
    for i, value in enumerate(fields):
        if i > 0:
            line = line[:-1] + " "
        line += str(value)
        line = line[: positions[i]]
        line += " " * (positions[i] - len(line))
    return line.rstrip()


def _wrap(line: str, line_length: int) -> list[str]:
    # Footer sentences wrap onto indented continuation lines instead of running past
    # line_length.
    return textwrap.wrap(line, line_length, subsequent_indent="  ") or [""]


def _stage_row(stage: Stage, indent: str = "") -> list[Any]:
    out = stage.output
    return [
        indent + stage.name,
        shapes(out) if out is not None else "",
        dtypes(out) if out is not None else "",
        f"{nbytes(out):,}" if out is not None else "",
        f"{stage.ms_per_batch:.3f}",
    ]


def summary_lines(
    seq: Sequence,
    line_length: int | None = None,
    positions: Seq[float] | None = None,
    num_batches: int = 3,
) -> list[str]:
    """The lines `print_summary` prints for a pipeline (see there)."""
    p = as_pipeline(seq)
    line_length = line_length or 110
    cols = _columns(line_length, positions)
    stages = trace(p, num_batches)
    rows: list[str] = []
    for stage in stages:
        for inner in stage.inner:
            rows.append(_row(_stage_row(inner, "  > "), cols))
        rows.append(_row(_stage_row(stage), cols))
    slowest = max(stages, key=lambda s: s.ms_per_batch)
    total = sum(s.ms_per_batch for s in stages) or 1.0
    plan = p.plan
    samples = "batches" if p.batch_size is None else "samples"
    footer = [
        f"{samples.capitalize()}: {plan.num_samples:,}"
        + (f" ({plan.num_dropped} dropped per epoch)" if plan.num_dropped else ""),
        f"Batches per epoch: {len(p):,}"
        + (f" (shard {plan.shard_index} of {plan.num_shards})" if p.sharded else ""),
        f"Batch size: {p.batch_size}",
        f"Shuffle: {p.shuffle!r} (seed {p.seed})",
        f"Slowest stage: {slowest.name} ({slowest.ms_per_batch:.3f} ms/batch, "
        f"{100 * slowest.ms_per_batch / total:.0f}% of the measured time; "
        f"{min(num_batches, len(p))} batches measured)",
    ]
    return [
        *_wrap(f'Pipeline: "{type(seq).__name__}"', line_length),
        "_" * line_length,
        _row(HEADER, cols),
        "=" * line_length,
        *rows,
        "=" * line_length,
        *(part for line in footer for part in _wrap(line, line_length)),
        "_" * line_length,
    ]


def print_summary(
    model: Any,
    line_length: int | None = None,
    positions: Seq[float] | None = None,
    print_fn: Callable[[str], Any] | None = None,
) -> None:
    """Prints a summary of a Keras model, or of a pipeline's stages.

    For a `Pipeline` or `Sequence`: one row per stage (each source, batching, each
    transform in order, sharding) with the output shapes, dtypes and bytes of one batch
    and the measured milliseconds per batch (over the first 3 batches; random transforms
    are marked ``[random]`` and run with their real per-batch generators), then the samples,
    batches per epoch, batch size, shuffle mode and the slowest stage. A Keras model is
    handed to its own ``summary``.

    Args:
        model: a Keras model, a `Pipeline` or a `Sequence`.
        line_length: total length of printed lines (longer footer lines wrap).
        positions: right edge of each column, relative (<= 1) or absolute.
        print_fn: called with each line (default: ``print``).

    Raises:
        ValueError: for ``positions`` of the wrong length.

    Example:
        >>> import numpy as np
        >>> lines = []
        >>> print_summary(Pipeline(np.zeros((8, 2)), 4, seed=0), print_fn=lines.append)
        >>> lines[-3]
        'Shuffle: False (seed 0)'
    """
    if not isinstance(model, Pipeline | Sequence):
        model.summary(line_length=line_length, positions=positions, print_fn=print_fn)
        return
    for line in summary_lines(model, line_length, positions):
        (print_fn or print)(line)
