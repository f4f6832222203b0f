"""Resuming a training job from its backup, on any topology: where the pipeline
continues, what is restored, and the line that says so.

See NOTE [ Exactly-once resume ] in ``parallel/backup.py``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ..pipeline import Pipeline
from .backup import Saved
from .replicas import Replicas, assign_optimizer, pull_template

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resume:
    """What a `MultiGPUTrainer.fit` restarted from a backup continues from.

    Args:
        saved: the backup's content.

    Example:
        >>> resume = Resume(saved)                      # doctest: +SKIP
        >>> resume.start(saved.epoch)                   # doctest: +SKIP
        12800
    """

    saved: Saved

    @property
    def epoch(self) -> int:
        """The epoch in progress when the backup was written."""
        return self.saved.epoch

    def start(self, epoch: int) -> int:
        """Where ``epoch``'s steps begin in its order: the saved position in the resumed
        epoch, else 0."""
        return self.saved.position if epoch == self.saved.epoch else 0

    def position_pipeline(self, seq: Pipeline) -> None:
        """Puts ``seq`` at the saved epoch and position (its steps begin there)."""
        seq.set_epoch(self.saved.epoch, self.saved.position, self.saved.block)

    def restore_weights(self, template: Any) -> None:
        """Puts the saved weights into the template (before the replicas are cloned)."""
        template.set_weights(self.saved.weights)

    def restore_optimizer(self, template: Any, replicas: Replicas) -> None:
        """Puts the saved optimizer state into the replicas, and then the template."""
        assign_optimizer(replicas.optimizer, self.saved.optimizer)
        pull_template(template, replicas)  # a learning rate set before the crash, too

    def describe(self, seq: Pipeline, topology: dict[str, int]) -> str:
        """The line logged on resume, e.g. ``resumed epoch 3 at sample 12,800 of 50,000
        (was 2 workers x 2 replicas, now 3 x 1)``."""
        was = self.saved.topology
        return (
            f"resumed epoch {self.saved.epoch} at sample {self.saved.position:,} of "
            f"{seq.num_samples:,} (was {was['workers']} workers x {was['replicas']} "
            f"replicas of batch {was['batch_size']}, now {topology['workers']} x "
            f"{topology['replicas']} of batch {topology['batch_size']})"
        )
