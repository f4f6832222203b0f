"""Checks of `MultiGPUTrainer.fit`'s Keras arguments: what it accepts and what it refuses.

Arguments that would break exactly-once (an epoch cut short, a second shuffle on top
of the pipeline's plan) are refused with the reason and the seqpipe way to do it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_REFUSED = {
    "batch_size": "the pipeline sets the batch size: Pipeline(..., batch_size=N)",
    "validation_batch_size": "the validation pipeline sets its batch size",
    "shuffle": "the pipeline's plan shuffles, a pure function of (seed, epoch): "
    "Pipeline(..., shuffle=True, seed=S)",
    "sample_weight": "give the pipeline (x, y, sample_weight) batches",
    "validation_split": "pass validation_data=<another pipeline>; a split taken from "
    "the training pipeline would be trained on as well",
}
_STEPS = {
    "steps_per_epoch": "an epoch cut short leaves samples untrained, and continuing the "
    "next epoch from there trains some twice: every epoch is the pipeline's whole epoch. "
    "For shorter epochs build a smaller pipeline (fewer samples, or drop_remainder=True)",
    "validation_steps": "a partial validation pass would report metrics over some samples "
    "only: validation covers the whole validation pipeline. Pass a smaller pipeline "
    "instead",
}


def refuse_other_backends(what: str) -> None:
    """Raises unless Keras runs on TensorFlow: the trainer is built on ``tf.distribute``.

    Args:
        what: the refused call, for the message.

    Raises:
        RuntimeError: naming the Keras backend in use and what to use with it instead.
    """
    import keras

    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise RuntimeError(
            f"{what} trains with tf.distribute, so it needs Keras' TensorFlow backend; "
            f"Keras runs on {backend!r} here (KERAS_BACKEND={backend}). On this backend "
            f"use keras.distribution (e.g. keras.distribution.set_distribution("
            f"keras.distribution.DataParallel())) with model.fit(seq.as_keras()), or "
            f"set KERAS_BACKEND=tensorflow"
        )


def refuse_keras_arguments(steps: int, validation_steps: int | None, **given: Any) -> None:
    """Raises for Keras ``fit`` arguments that the trainer does not take.

    Args:
        steps: batches per epoch of the training pipeline.
        validation_steps: batches of the validation pipeline (``None`` if there is none).
        **given: the extra keyword arguments passed to ``fit``.

    Raises:
        ValueError: for a Keras argument that would break exactly-once, saying why and
            what to use instead (``steps_per_epoch`` equal to the epoch is accepted).
        TypeError: for an argument Keras' ``fit`` does not have either.
    """
    whole = {"steps_per_epoch": steps, "validation_steps": validation_steps}
    for name, value in given.items():
        if name in _STEPS:
            if value is None or value == whole[name]:
                continue
            raise ValueError(
                f"MultiGPUTrainer.fit refuses {name}={value!r} (the pipeline has "
                f"{whole[name]} batches): {_STEPS[name]}"
            )
        if name in _REFUSED:
            if value is None or (name == "validation_split" and not value):
                continue
            raise ValueError(
                f"MultiGPUTrainer.fit does not take {name}={value!r}: {_REFUSED[name]}"
            )
        raise TypeError(f"MultiGPUTrainer.fit() got an unexpected keyword argument {name!r}")


def should_validate(epoch: int, validation_freq: Any) -> bool:
    """Keras' rule: validate after epoch ``e`` (0-based) when ``(e + 1) % freq == 0``, or
    when ``e + 1`` is in ``freq`` if it is a collection.

    Raises:
        ValueError: if ``validation_freq`` is neither a positive int nor a collection.

    Example:
        >>> [should_validate(e, 2) for e in range(4)]
        [False, True, False, True]
        >>> [should_validate(e, [1, 3]) for e in range(4)]
        [True, False, True, False]
    """
    if isinstance(validation_freq, int) and not isinstance(validation_freq, bool):
        if validation_freq < 1:
            raise ValueError(f"validation_freq must be >= 1. Received: {validation_freq}")
        return (epoch + 1) % validation_freq == 0
    if isinstance(validation_freq, list | tuple | set | frozenset | range):
        return epoch + 1 in validation_freq
    raise ValueError(
        f"validation_freq must be an int >= 1 or a collection of epoch numbers. "
        f"Received: validation_freq={validation_freq!r}"
    )


def check_class_weight(class_weight: Any, model: Any) -> dict[int, float] | None:
    """Validates ``class_weight`` against the model's classes.

    Args:
        class_weight: ``None`` or ``{class index: weight}``.
        model: the compiled model.

    Returns:
        ``{int: float}``, or ``None``.

    Raises:
        ValueError: for a model with several outputs (as Keras refuses), a key that is
            not a class of the model, or a non-numeric weight.
        TypeError: if ``class_weight`` is not a mapping.
    """
    if class_weight is None:
        return None
    outputs = len(getattr(model, "outputs", None) or [])
    if outputs > 1:
        raise ValueError(
            f"class_weight is only supported for models with a single output, as in Keras; "
            f"this model has {outputs}. Give the pipeline (x, y, sample_weight) batches"
        )
    num_classes = _num_classes(model)
    if not isinstance(class_weight, Mapping):
        raise TypeError(
            f"class_weight must be a dict {{class index: weight}}. "
            f"Received: {type(class_weight).__name__}"
        )
    checked = {}
    for key, weight in class_weight.items():
        integral = hasattr(key, "__index__") and not isinstance(key, bool)
        if not integral or int(key) < 0 or (num_classes and int(key) >= num_classes):
            classes = f"0..{num_classes - 1}" if num_classes else "ints >= 0"
            raise ValueError(
                f"class_weight key {key!r} is not a class: the model's classes are {classes}"
            )
        try:
            checked[int(key)] = float(weight)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"class_weight[{key!r}] must be a number. Received: {weight!r}"
            ) from error
    return checked


def check_callbacks(callbacks: list | None) -> None:
    """Refuses callbacks that would save or restore the wrong state.

    Raises:
        ValueError: for Keras' ``BackupAndRestore`` (it redoes the interrupted epoch:
            use ``fit(backup_dir=...)``) or a ``ModelCheckpoint`` saving every N batches
            (the template is updated at epoch ends).
    """
    import keras

    for callback in callbacks or []:
        if isinstance(callback, keras.callbacks.BackupAndRestore):
            raise ValueError(
                "keras.callbacks.BackupAndRestore redoes the interrupted epoch from its "
                "start, so samples are trained twice; use MultiGPUTrainer.fit(..., "
                "backup_dir=D, backup_every=N), which resumes at the next untrained batch"
            )
        checkpoint = isinstance(callback, keras.callbacks.ModelCheckpoint)
        if checkpoint and callback.save_freq != "epoch":
            raise ValueError(
                f"ModelCheckpoint(save_freq={callback.save_freq!r}) would save the "
                f"template mid-epoch, but MultiGPUTrainer updates the template at the "
                f"end of each epoch; use save_freq='epoch', or fit(backup_dir=D, "
                f"backup_every=N) to save training state every N steps"
            )


def _num_classes(model: Any) -> int | None:
    """The class count of a model with one output of several units, else ``None``."""
    outputs = getattr(model, "outputs", None) or []
    if len(outputs) == 1 and outputs[0].shape[-1] and outputs[0].shape[-1] > 1:
        return int(outputs[0].shape[-1])
    return None
