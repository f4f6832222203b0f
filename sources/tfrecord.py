"""`TFRecordSource`: records of TFRecord files, local or in object storage, at random.

Files are indexed once (NOTE [ TFRecord framing ] in ``sources/_tfrecord_index.py``,
NOTE [ Shard index cache ] in ``sources/_shard_index.py``), then any record is one
ranged read away; ``tf.train.Example`` records are parsed by protobuf, not TensorFlow
(``sources/_example_proto.py``), so worker processes never import TensorFlow.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ._decode import decode_image
from ._example_proto import example_class
from ._shard_index import INDEX_SUFFIX, Index
from ._sharded_source import ShardedSource, check_output_shape
from ._tfrecord_index import CorruptRecordError, compression_refusal, record_data, scan_records

if TYPE_CHECKING:
    import pyarrow.fs as pafs

# Feature types: the Example list each one is stored in, and the dtype of numbers.
_IMAGES = ("jpeg", "png", "image")
_LISTS = {
    "int64": "int64_list",
    "float32": "float_list",
    "bytes": "bytes_list",
    "str": "bytes_list",
    **dict.fromkeys(_IMAGES, "bytes_list"),
}
_NUMBERS = {"int64": np.int64, "float32": np.float32}
# How to declare a feature found in a given list, for error messages.
_SUGGEST = {"int64_list": "'int64'", "float_list": "'float32'", "bytes_list": "'bytes' or 'jpeg'"}
RECORD = "record"  # the one field of a source without ``features``: the raw records


def _parse_spec(name: str, spec: Any) -> tuple[str, tuple[int, ...]]:
    """``(type, shape)`` of one entry of ``features``."""
    kind, shape = (spec, ()) if isinstance(spec, str) else (None, None)
    if isinstance(spec, tuple | list) and len(spec) == 2 and isinstance(spec[0], str):
        kind, shape = spec[0], spec[1]
    valid = isinstance(shape, tuple | list) and all(
        isinstance(d, int | np.integer) and d > 0 for d in shape
    )
    if kind not in _LISTS or not valid or (shape and kind not in _NUMBERS):
        raise ValueError(
            f"feature {name!r}: expected one of {sorted(_LISTS)} or (dtype, shape) with "
            f"dtype 'int64' or 'float32', e.g. ('float32', (128,)). Received: {spec!r}"
        )
    return kind, tuple(int(d) for d in shape)


class TFRecordSource(ShardedSource):
    """Records of TFRecord files as samples, read at random, optionally parsed as Examples.

    Each file is indexed once (one pass over the record headers) and the index kept
    next to the file, or in ``cache_dir`` (see NOTE [ Shard index cache ]); then a
    batch costs one ranged read per run of neighbouring records. Every record's CRCs
    are checked (masked crc32c). With ``features``, records are parsed as
    ``tf.train.Example`` by protobuf, without TensorFlow, and the features named are
    decoded: one feature gives arrays, several give dicts of arrays. Each file is a
    chunk (`chunks`) for ``shuffle="window"``.

    Compressed files (GZIP, ZLIB) are refused with the reason: a record's offset in a
    compressed stream is known only after decompressing all before it, so they could
    only be read in order. Decompress them once instead (the error says how).

    Args:
        paths_or_uri: a file, a directory (its files except hidden ones), a glob
            (``train-*.tfrecord``), a brace pattern (``train-{000..007}.tfrecord``) or
            a list of files; local paths or URIs on one filesystem (``s3://``,
            ``gs://``, with pyarrow's query options), or with ``filesystem`` paths
            inside it.
        features: ``None`` (each sample is the record's bytes), or
            ``{name: type}`` with type ``"int64"`` or ``"float32"`` (one value),
            ``("int64" | "float32", shape)`` (that many values, reshaped),
            ``"bytes"``, ``"str"`` (UTF-8), or ``"jpeg"``/``"png"``/``"image"``
            (decoded like `ImageFiles`: upright RGB, uint8 for 8-bit files).
        compression: ``None`` (or ``""``); ``"GZIP"`` and ``"ZLIB"`` raise (above).
        output_shape: ``(height, width)`` images are resized to, or ``None``.
        anti_aliasing: blur before shrinking images, as `ImageFiles` does.
        filesystem: a `pyarrow.fs.FileSystem` holding the files (not saveable in a
            config).
        cache_dir: a local directory for the indexes and fetched remote bytes.
        cache_dir_bytes: budget of ``cache_dir``.
        chunk_cache_bytes: remote files up to this size are fetched whole on first
            touch and kept in each process, up to this many bytes (for
            ``shuffle="window"``; with ``cache_dir`` too, a file is fetched once per
            host, not per worker); 0 fetches only the records asked for.

    Raises:
        FileNotFoundError: naming the path or pattern, if no file matches.
        ValueError: for a malformed ``features`` entry, a feature missing from the
            first record or stored in another type (naming the file, the record and
            the fix), compressed files, or bad arguments; on reading, for a record that
            lacks a feature or holds another type.
        CorruptRecordError: (a ``ValueError``) naming the file and record for a
            truncated record or a CRC mismatch.

    Example:
        >>> source = TFRecordSource("s3://bucket/train-*.tfrecord",             # doctest: +SKIP
        ...                         features={"image": "jpeg", "label": "int64"},
        ...                         output_shape=(224, 224))
        >>> batch = source[[5, 0, 9]]                                          # doctest: +SKIP
        >>> batch["image"].shape, batch["label"].dtype                         # doctest: +SKIP
        ((3, 224, 224, 3), dtype('int64'))
    """

    what = "TFRecord"
    index_kind = "tfrecord-1"

    def __init__(
        self,
        paths_or_uri: str | os.PathLike | Sequence[str | os.PathLike],
        features: Mapping[str, Any] | None = None,
        compression: str | None = None,
        output_shape: tuple[int, int] | None = None,
        anti_aliasing: bool = True,
        filesystem: pafs.FileSystem | None = None,
        cache_dir: str | os.PathLike | None = None,
        cache_dir_bytes: int = 16 * 2**30,
        chunk_cache_bytes: int = 0,
    ) -> None:
        if compression not in (None, ""):
            if str(compression).upper() in ("GZIP", "ZLIB"):
                raise ValueError(f"compression={compression!r}: {compression_refusal()}")
            raise ValueError(
                f"compression must be None (GZIP and ZLIB are refused: see the "
                f"docstring). Received: compression={compression!r}"
            )
        if features is not None and (not isinstance(features, Mapping) or not features):
            raise ValueError(
                f"features must be a non-empty dict {{name: type}} or None. Received: {features!r}"
            )
        self.features = None if features is None else dict(features)
        self._specs = {n: _parse_spec(n, s) for n, s in (self.features or {}).items()}
        self.output_shape = check_output_shape(output_shape)
        self.anti_aliasing = bool(anti_aliasing)
        self._open(paths_or_uri, filesystem, cache_dir, cache_dir_bytes, chunk_cache_bytes)
        if self._specs:  # a wrong name or type fails here, not in a worker
            self.read_fields(np.array([0], dtype=np.int64))

    @property
    def fields(self) -> list[str]:
        return list(self._specs) or [RECORD]

    def accept(self, name: str) -> bool:
        return not name.startswith((".", "_")) and not name.endswith(INDEX_SUFFIX)

    def scan(self, k: int) -> Index:
        reader = self._reader
        return scan_records(reader.open_sequential(k), reader.sizes[k], reader.name(k))

    def decode(self, i: int, data: bytes) -> dict[str, Any]:
        k, record = self.locate(i)
        name = self._reader.name(k)
        payload = record_data(data, name, record)
        if not self._specs:
            return {RECORD: payload}
        try:
            feature_map = example_class().FromString(payload).features.feature
        except Exception as error:  # protobuf's DecodeError
            raise ValueError(
                f"{name}, record {record}: not a tf.train.Example ({error}); pass "
                f"features=None to read raw records"
            ) from None
        return {
            feature: self._decode_feature(feature_map, feature, name, record)
            for feature in self._specs
        }

    def _decode_feature(self, feature_map: Any, feature: str, name: str, record: int) -> Any:
        kind, shape = self._specs[feature]
        if feature not in feature_map:
            raise ValueError(
                f"{name}, record {record} has no feature {feature!r}; its features are "
                f"{sorted(feature_map)}: fix the name in features="
            )
        stored = feature_map[feature].WhichOneof("kind")
        if stored != _LISTS[kind]:
            raise ValueError(
                f"{name}, record {record}: feature {feature!r} is stored as {stored}, "
                f"which {kind!r} cannot read; declare it as {_SUGGEST.get(stored, stored)}"
            )
        values = getattr(feature_map[feature], stored).value
        count = int(np.prod(shape))
        if len(values) != count:
            advice = f"('{kind}', ({len(values)},))" if kind in _NUMBERS else "a list type"
            raise ValueError(
                f"{name}, record {record}: feature {feature!r} holds {len(values)} values, "
                f"{count} expected for {(kind, shape) if shape else kind!r}; declare it as "
                f"{advice}"
            )
        if kind in _NUMBERS:
            array = np.array(values, dtype=_NUMBERS[kind])
            return array.reshape(shape) if shape else array[0]
        if kind == "bytes":
            return values[0]
        if kind == "str":
            return values[0].decode("utf-8")
        where = f"{name}, record {record}, feature {feature!r}"
        return decode_image(values[0], where, self.output_shape, 1, self.anti_aliasing)

    def get_config(self) -> dict[str, Any]:
        """Returns the arguments that rebuild this source.

        Raises:
            ValueError: if it was given a filesystem object, which a config cannot hold.
        """
        return {
            "paths_or_uri": self.paths_or_uri,
            "features": self.features,
            "output_shape": None if self.output_shape is None else list(self.output_shape),
            "anti_aliasing": self.anti_aliasing,
            **self.storage_config(),
        }


__all__ = ["CorruptRecordError", "TFRecordSource"]
