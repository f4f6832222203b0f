"""Which devices a multi-device run uses (TensorFlow is imported lazily)."""

from __future__ import annotations

from collections.abc import Sequence as Seq
from typing import Any


def resolve_devices(gpus: int | Seq[int | str] | None, minimum: int = 1) -> list[str]:
    """Turns the seed's ``gpus`` argument into TensorFlow device names.

    Args:
        gpus: an int (the first ``gpus`` GPUs), a list of GPU ids, a list of device
            names (``["/cpu:0", "/cpu:1"]``: how tests target logical CPU devices), or
            ``None`` (every GPU; the CPU when there is none and ``minimum`` is 1).
        minimum: the fewest devices the caller accepts.

    Returns:
        Device names such as ``"/gpu:0"``.

    Raises:
        ValueError: when fewer devices exist than asked for (naming the count found),
            or ``gpus`` is below ``minimum``.
    """
    import tensorflow as tf

    available = [d.name for d in tf.config.list_logical_devices("GPU")]
    if gpus is None:
        if len(available) >= minimum:
            return [f"/gpu:{i}" for i in range(len(available))]
        if minimum <= 1:
            return ["/cpu:0"]
        raise ValueError(
            f"To use {minimum} or more GPUs, they must be visible; found {len(available)} "
            f"GPU(s): {available}"
        )
    if isinstance(gpus, int | bool):
        if isinstance(gpus, bool) or gpus < minimum:
            raise ValueError(f"gpus must be an int >= {minimum} or a list. Received: gpus={gpus}")
        ids: list[Any] = list(range(gpus))
    else:
        ids = list(gpus)
        if len(ids) < minimum:
            raise ValueError(f"gpus must name at least {minimum} devices. Received: gpus={gpus}")
    if all(isinstance(i, str) for i in ids):
        known = {_canonical(d.name) for d in tf.config.list_logical_devices()}
        wanted = [str(i) for i in ids]
        missing = [d for d in wanted if _canonical(d) not in known]
        if missing:
            raise ValueError(f"devices {missing} are not available; found {sorted(known)}")
        return wanted
    if len(available) < len(ids) or any(int(i) >= len(available) for i in ids):
        raise ValueError(
            f"To call multi_gpu_model with gpus={gpus}, we expect the devices "
            f"{[f'/gpu:{i}' for i in ids]} to be available. However this machine only has "
            f"{len(available)} GPU(s): {available}. Try reducing `gpus`."
        )
    return [f"/gpu:{int(i)}" for i in ids]


def _canonical(name: str) -> str:
    # "/cpu:1", "/device:CPU:1" and "/job:localhost/.../device:CPU:1" -> "cpu:1"
    kind, _, index = name.lower().rsplit("/", 1)[-1].removeprefix("device:").partition(":")
    return f"{kind}:{index or 0}"
