"""Resuming a training job from its backup: which epoch and step, and what to restore.

See NOTE [ Exactly-once resume ] in ``parallel/backup.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .backup import Saved
from .replicas import Replicas, pull_template


@dataclass(frozen=True)
class Resume:
    """What a `MultiGPUTrainer.fit` restarted from a backup continues from.

    Args:
        saved: the backup's content.

    Example:
        >>> resume = Resume(saved)                      # doctest: +SKIP
        >>> resume.first_step(saved.epoch)              # doctest: +SKIP
        12
    """

    saved: Saved

    @property
    def epoch(self) -> int:
        """The epoch in progress when the backup was written."""
        return self.saved.epoch

    def enqueuer_state(self, fresh_state: dict[str, Any]) -> dict[str, Any]:
        """The enqueuer state that delivers the first batch not trained on.

        Args:
            fresh_state: ``OrderedEnqueuer(seq).state()`` of the pipeline to resume, which
                holds its plan's identity.
        """
        return {**fresh_state, "epoch": self.saved.epoch, "next_index": self.saved.step}

    def first_step(self, epoch: int) -> int:
        """The first step to train in ``epoch``: the saved one in the resumed epoch."""
        return self.saved.step if epoch == self.saved.epoch else 0

    def restore_weights(self, template: Any) -> None:
        """Puts the saved weights into the template (before the replicas are cloned)."""
        template.set_weights(self.saved.weights)

    def restore_optimizer(self, template: Any, replicas: Replicas) -> None:
        """Puts the saved optimizer state into the replicas, and then the template."""
        for variable, value in zip(replicas.optimizer.variables, self.saved.optimizer, strict=True):
            variable.assign(value)
        pull_template(template, replicas)  # a learning rate set before the crash, too
