"""`Backup`: the state of a training job in progress, saved atomically every N steps.

NOTE [ Exactly-once resume ]
A backup holds everything that decides the rest of the job: the model's weights, the
optimizer's variables (its iteration count and, under ``mixed_float16``, the loss
scale), the epoch and the global position ``P`` reached in its order (the samples all
workers and replicas together have trained on; NOTE [ Elastic resume ] in
``parallel/enqueuer.py``), and the running loss and metric totals of that epoch. A
restarted `fit` positions the pipeline at ``(epoch, P)`` (`Pipeline.set_epoch`), so
the first batch it reads is the next one never trained on, whatever the new topology:
another replica count, worker count or per-replica batch size cuts the rest of the
epoch into its own steps. What must still match is checked: the model's architecture
and the pipeline's identity (samples, shuffle, seed, sources), not the topology. Only
the chief worker writes (weights are identical on every worker, and metric and loss
totals are read summed across workers); every worker reads the same file, and the
workers check that they agree on ``(epoch, P)`` before training. The file is written
under a temporary name, flushed, then renamed, so a crash leaves the previous backup or
the new one, never a torn one; the temporary file of a save killed half-way is removed
by the next save (NOTE [ Leftovers of killed processes ] in ``parallel/leftovers.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._core.checks import check_writable_dir
from .leftovers import backup_temporary_prefix, remove_dead_temporaries

_FILE = "seqpipe-backup.npz"


def model_identity(model: Any) -> str:
    """A short hash of the model's architecture: its layer classes, its weights' shapes
    and dtypes, and its optimizer's class (not names: Keras numbers them per process)."""
    described: list[Any] = [type(layer).__name__ for layer in model.layers]
    described += [(tuple(w.shape), str(w.dtype)) for w in model.weights]
    described.append(type(model.optimizer).__name__)
    return hashlib.sha256(json.dumps(described).encode()).hexdigest()[:16]


def _flat(identity: dict[str, Any]) -> dict[str, Any]:
    # {"pipeline": {"seed": 3}} -> {"pipeline seed": 3}: messages name the field.
    flat = {}
    for key, value in identity.items():
        if isinstance(value, dict):
            flat.update({f"{key} {k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat


@dataclass(frozen=True)
class Saved:
    """A job's state as saved: where it stopped and everything needed to go on.

    Attributes:
        epoch: the epoch in progress.
        position: the samples of that epoch's order trained on, by all workers and
            replicas together (``num_samples``, or the kept ones: all were trained).
        block: for ``shuffle='batch'``, the block size of that epoch's order.
        topology: how the job ran, ``{"workers", "replicas", "batch_size"}`` (for the
            message on resume; not checked).
        loss_totals: the epoch's running loss totals so far, over all replicas (the
            total's weighted sum, then one per output for a model with several: NOTE [
            Per-output losses ] in ``parallel/losses.py``).
        count: the real samples they were summed over.
        steps: the steps of the epoch they were summed over.
        weights: the model's weights.
        optimizer: the optimizer's variables (the loss scale included).
        metrics: the metric state variables, summed over replicas and workers.
    """

    epoch: int
    position: int
    block: int | None
    topology: dict[str, int]
    loss_totals: list[float]
    count: float
    steps: int
    weights: list[np.ndarray]
    optimizer: list[np.ndarray]
    metrics: list[np.ndarray]


class Backup:
    """Saves and restores a training job in ``backup_dir``.

    Args:
        backup_dir: a directory every worker can read (created if missing).
        every: save after every ``every`` training steps.
        identity: what the backup belongs to, e.g. ``{"model": ..., "pipeline": ...}``;
            a backup with other values is refused, naming them.
        chief: whether this process writes (worker 0).

    Raises:
        ValueError: if ``backup_dir`` cannot be written, or ``every`` is not an int >= 1.

    Example:
        >>> backup = Backup(tmp_dir, 10, {"model": "ab12"})   # doctest: +SKIP
        >>> backup.load() is None                             # doctest: +SKIP
        True
    """

    def __init__(
        self, backup_dir: str | os.PathLike, every: int, identity: dict[str, Any], chief: bool
    ) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"backup_every must be an int >= 1. Received: backup_every={every!r}")
        self.dir = os.fspath(backup_dir)
        self.every = every
        self.identity = identity
        self.chief = chief
        self.path = os.path.join(self.dir, _FILE)
        check_writable_dir(self.dir, f"backup_dir={self.dir!r}")

    def saved_identity(self) -> dict[str, Any] | None:
        """The identity the backup was saved with, or ``None`` when there is no backup."""
        if not os.path.exists(self.path):
            return None
        with np.load(self.path) as data:
            return json.loads(str(data["meta"]))["identity"]

    def load(self) -> Saved | None:
        """Returns the saved state, or ``None`` when there is no backup.

        Raises:
            ValueError: if the backup belongs to another model or pipeline, naming what
                differs (the topology may differ: NOTE [ Exactly-once resume ]).
        """
        if not os.path.exists(self.path):
            return None
        with np.load(self.path) as data:
            meta = json.loads(str(data["meta"]))
            parts = {
                name: [data[f"{name}_{i}"] for i in range(meta["counts"][name])]
                for name in ("weights", "optimizer", "metrics")
            }
        saved = _flat(meta["identity"])
        differs = [
            f"{key} is {saved.get(key)!r} in the backup and {value!r} here"
            for key, value in _flat(self.identity).items()
            if saved.get(key) != value
        ]
        if differs:
            raise ValueError(
                f"the backup {self.path} belongs to another training job: "
                f"{'; '.join(differs)}. Use another backup_dir, or delete it to start over"
            )
        fields = ("epoch", "position", "block", "topology", "loss_totals", "count", "steps")
        return Saved(**{key: meta[key] for key in fields}, **parts)

    def due(self, steps_done: int) -> bool:
        """Whether a backup is due after ``steps_done`` steps of this run."""
        return steps_done % self.every == 0

    def save(self, state: Saved) -> None:
        """Writes ``state`` atomically (chief only); see NOTE [ Exactly-once resume ].

        Temporary files of saves that were killed half-way are removed first."""
        if not self.chief:
            return
        parts = {"weights": state.weights, "optimizer": state.optimizer, "metrics": state.metrics}
        meta = {
            "epoch": state.epoch,
            "position": state.position,
            "block": state.block,
            "topology": state.topology,
            "loss_totals": state.loss_totals,
            "count": state.count,
            "steps": state.steps,
            "identity": self.identity,
            "counts": {name: len(values) for name, values in parts.items()},
        }
        arrays = {"meta": np.array(json.dumps(meta))}
        for name, values in parts.items():
            arrays.update({f"{name}_{i}": np.asarray(v) for i, v in enumerate(values)})
        remove_dead_temporaries(self.dir)
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=backup_temporary_prefix(), suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            os.unlink(tmp)
            raise

    def delete(self) -> None:
        """Removes the backup (when ``fit`` ends, as Keras' ``delete_checkpoint=True``)."""
        if self.chief and os.path.exists(self.path):
            os.unlink(self.path)
