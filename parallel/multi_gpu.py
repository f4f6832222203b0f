"""`multi_gpu_model`: the Keras 2 data-parallel wrapper, rebuilt for Keras 3."""

from __future__ import annotations

from typing import Any

from .devices import resolve_devices
from .fit_options import refuse_other_backends


def multi_gpu_model(
    model: Any, gpus: Any = None, cpu_merge: bool = True, cpu_relocation: bool = False
) -> Any:
    """Replicates a model on several devices, splitting each batch between them.

    Each input batch is cut into one contiguous sub-batch per device, the template
    ``model`` runs on each device (all replicas share its weights), and the outputs
    are concatenated (on the CPU when ``cpu_merge``). The result trains, evaluates and
    predicts like the template, with equal outputs; save the template.

    Args:
        model: the Keras template model.
        gpus: an int >= 2 (the first ``gpus`` GPUs), a list of >= 2 GPU ids, or a list
            of device names: ``["/cpu:0", "/cpu:1"]`` targets logical CPU devices (made
            with ``tf.config.set_logical_device_configuration``), as the tests do.
            ``None``: every visible GPU (at least 2).
        cpu_merge: concatenate the outputs on the CPU.
        cpu_relocation: create the weights on the CPU, as Keras 2 did: the template is
            cloned under ``/cpu:0`` (its weights copied) and the replicas share the
            clone's weights, so the trained weights are the clone's:
            ``parallel_model.template`` (save that one). Without it the replicas share
            the template's own weights, wherever they were created.

    Returns:
        A Keras model with the template's inputs and outputs; its ``template`` attribute
        is the model whose weights every replica shares.

    Raises:
        ValueError: if fewer devices are visible than asked for (naming the count
            found), or fewer than 2 are asked for.
        RuntimeError: if Keras runs on another backend than TensorFlow.

    Example:
        >>> parallel_model = multi_gpu_model(model, gpus=8)        # doctest: +SKIP
        >>> parallel_model.compile(loss="mse", optimizer="rmsprop")  # doctest: +SKIP
    """
    refuse_other_backends("multi_gpu_model")
    import keras
    import tensorflow as tf

    devices = resolve_devices(gpus, minimum=2)
    if cpu_relocation:
        with tf.device("/cpu:0"):
            relocated = keras.models.clone_model(model)
            relocated.set_weights(model.get_weights())
        model = relocated

    def split(value: Any, part: int) -> Any:
        size = tf.shape(value)[0]
        start = size * part // len(devices)
        stop = size * (part + 1) // len(devices)
        return value[start:stop]

    class ParallelModel(keras.Model):
        def __init__(self) -> None:
            super().__init__(name=f"{model.name}_multi_device")
            self.template = model

        def call(self, inputs: Any, training: Any = None) -> Any:
            outputs = []
            for part, device in enumerate(devices):
                with tf.device(device):
                    piece = tf.nest.map_structure(lambda v, p=part: split(v, p), inputs)
                    outputs.append(self.template(piece, training=training))
            with tf.device("/cpu:0" if cpu_merge else devices[0]):
                return tf.nest.map_structure(lambda *o: tf.concat(o, axis=0), *outputs)

    parallel = ParallelModel()
    # One call on a small batch builds the model, so it can be compiled and summarised.
    example = [tf.zeros((len(devices), *t.shape[1:]), t.dtype) for t in model.inputs]
    parallel(example[0] if len(example) == 1 else example)
    return parallel
