"""`WebDatasetSource`: samples of WebDataset tar shards, local or in buckets, at random.

Shards are indexed once (NOTE [ WebDataset samples ] in ``sources/_tar_index.py``,
NOTE [ Shard index cache ] in ``sources/_shard_index.py``); then a sample is one ranged
read of its span, and a run of neighbouring samples one read
(NOTE [ Reading spans of shards ] in ``sources/_shard_reader.py``).

NOTE [ Skipped samples ]
With ``on_error="skip"``, a sample whose member is missing or cannot be decoded is not
dropped (that would change the epoch's length and break exactly-once accounting): it
becomes a padding row. Its fields hold placeholders (zeros shaped like the other rows,
0, NaN, ``None``, empty bytes) and the batch's ``"sample_weight"`` field is 0 for it and
1 for every other row, so a loss weighted by it ignores the row, as it ignores the
padding of `Pipeline.shard` (which multiplies its weights into this field). The tally:
each skip is warned about once per process (naming the shard, the key and the reason),
kept in `WebDatasetSource.skipped` of the process that read it, and visible to the
consumer as the zero weights of the batches; `WebDatasetSource.incomplete` lists, from
the index alone, the samples that lack a member.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ._member_decoders import DECODERS, decode_member, placeholder
from ._shard_index import Index
from ._sharded_source import ShardedSource, check_output_shape, stack
from ._tar_index import scan_tar

if TYPE_CHECKING:
    import pyarrow.fs as pafs

WEIGHT = "sample_weight"  # the field that carries padding rows' weight 0 (skip mode)


class WebDatasetSource(ShardedSource):
    """Samples of WebDataset ``.tar`` shards, read at random and decoded by extension.

    A sample is the group of consecutive members sharing a key, as the ``webdataset``
    library defines it (NOTE [ WebDataset samples ]). Each shard is indexed once (its
    members' offsets and sizes) and the index kept next to it or in ``cache_dir``;
    then a batch costs one ranged read per run of neighbouring samples. Each shard is a
    chunk (`chunks`) for ``shuffle="window"``; with ``chunk_cache_bytes`` a remote shard
    is fetched whole, in one GET, by the first read that touches it.

    Args:
        urls_or_uri: a shard, a directory (its ``.tar`` files), a glob
            (``train-*.tar``), a brace pattern (``train-{000000..000099}.tar``, as
            WebDataset writes URLs) or a list; local paths or URIs on one filesystem
            (``s3://``, ``gs://``, with pyarrow's query options), or with ``filesystem``
            paths inside it.
        decode: ``{extension: decoder}``, decoders being ``"image"`` (JPEG, PNG, ... as
            `ImageFiles` decodes them), ``"int"``, ``"float"``, ``"json"``, ``"array"``
            (``.npy``), ``"bytes"`` or ``"str"``; e.g. ``{"jpg": "image", "cls":
            "int"}``. One extension gives arrays, several give dicts keyed by
            extension. ``None``: every extension of the first sample, as bytes.
        output_shape: ``(height, width)`` images are resized to, or ``None``.
        on_error: ``"raise"``: a missing or undecodable member raises ``ValueError``
            naming the shard and the key; ``"skip"``: the sample becomes a weight-0
            padding row and batches are dicts with a ``"sample_weight"`` field
            (NOTE [ Skipped samples ]).
        anti_aliasing: blur before shrinking images, as `ImageFiles` does.
        filesystem: a `pyarrow.fs.FileSystem` holding the shards (not saveable).
        cache_dir: a local directory for the indexes and fetched remote bytes.
        cache_dir_bytes: budget of ``cache_dir``.
        chunk_cache_bytes: remote shards up to this size are fetched whole on first
            touch and kept in each process, up to this many bytes (for
            ``shuffle="window"``: at least ``window`` shards; with ``cache_dir`` too, a
            shard is fetched once per host, not per worker); 0 fetches only the
            samples asked for.

    Raises:
        FileNotFoundError: naming the path or pattern, if no shard matches.
        ValueError: for an unknown decoder, an extension that no member has (listing
            those found), a damaged or truncated shard (naming it and the member), or
            bad arguments; on reading with ``on_error="raise"``, naming the shard and
            key of a missing or undecodable member.

    Example:
        >>> source = WebDatasetSource("s3://bucket/train-{0000..0099}.tar",  # doctest: +SKIP
        ...                           decode={"jpg": "image", "cls": "int"},
        ...                           output_shape=(224, 224))
        >>> batch = source[[17, 3]]                                         # doctest: +SKIP
        >>> batch["jpg"].shape, batch["cls"].dtype                          # doctest: +SKIP
        ((2, 224, 224, 3), dtype('int64'))
    """

    what = "tar shard"
    index_kind = "webdataset-1"

    def __init__(
        self,
        urls_or_uri: str | os.PathLike | Sequence[str | os.PathLike],
        decode: Mapping[str, str] | None = None,
        output_shape: tuple[int, int] | None = None,
        on_error: str = "raise",
        anti_aliasing: bool = True,
        filesystem: pafs.FileSystem | None = None,
        cache_dir: str | os.PathLike | None = None,
        cache_dir_bytes: int = 16 * 2**30,
        chunk_cache_bytes: int = 0,
    ) -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip'. Received: {on_error!r}")
        if decode is not None:
            if not isinstance(decode, Mapping) or not decode:
                raise ValueError(
                    f"decode must be a non-empty dict {{extension: decoder}} or None. "
                    f"Received: {decode!r}"
                )
            bad = {e: d for e, d in decode.items() if d not in DECODERS or e == WEIGHT}
            if bad:
                raise ValueError(
                    f"decode: unknown decoders {bad}; use one of {list(DECODERS)} for "
                    f"extensions other than {WEIGHT!r}"
                )
        self.on_error = on_error
        self.output_shape = check_output_shape(output_shape)
        self.anti_aliasing = bool(anti_aliasing)
        self.skipped: dict[int, str] = {}
        self.decode_spec = dict(decode or {})
        self._indexes = self._open(
            urls_or_uri, filesystem, cache_dir, cache_dir_bytes, chunk_cache_bytes
        )
        if decode is None:  # the first non-empty shard's first sample
            first = self._indexes[int(np.searchsorted(self._starts, 0, side="right")) - 1]
            exts = first["member_ext"][: first["member_first"][1]].tolist()
            self.decode_spec = dict.fromkeys(exts, "bytes")
        self.incomplete = self._incomplete()

    def _incomplete(self) -> np.ndarray:
        """Ids of the samples missing a member ``decode`` asks for, from the indexes."""
        found: set[str] = set()
        lacking = []
        for k, index in enumerate(self._indexes):
            count = len(index["keys"])
            owner = np.repeat(np.arange(count), np.diff(index["member_first"]))
            complete = np.ones(count, dtype=bool)
            for ext in self.decode_spec:
                has = np.zeros(count, dtype=bool)
                has[owner[index["member_ext"] == ext]] = True
                complete &= has
            found.update(np.unique(index["member_ext"]).tolist())
            lacking.append(self._starts[k] + np.flatnonzero(~complete))
        unknown = sorted(set(self.decode_spec) - found)
        if unknown:
            raise ValueError(
                f"decode names extensions {unknown} that no member of the shards has; "
                f"their extensions are {sorted(found)}"
            )
        return np.concatenate(lacking).astype(np.int64)

    @property
    def fields(self) -> list[str]:
        return [*self.decode_spec, *([WEIGHT] if self.on_error == "skip" else [])]

    @property
    def keys(self) -> np.ndarray:
        """The key of every sample, in sample order (a str array)."""
        return np.concatenate([index["keys"] for index in self._indexes])

    def accept(self, name: str) -> bool:
        return name.endswith(".tar") and not name.startswith(".")

    def scan(self, k: int) -> Index:
        reader = self._reader
        return scan_tar(reader.open_sequential(k), reader.sizes[k], reader.name(k))

    def decode(self, i: int, data: bytes) -> dict[str, Any] | None:
        """Decodes sample ``i``; ``None`` when it is skipped (NOTE [ Skipped samples ])."""
        k, j = self.locate(i)
        index = self._indexes[k]
        where = f"tar shard {self._reader.name(k)}, sample {str(index['keys'][j])!r}"
        lo, hi = int(index["member_first"][j]), int(index["member_first"][j + 1])
        exts = index["member_ext"][lo:hi].tolist()
        out = {}
        try:
            for ext, kind in self.decode_spec.items():
                if ext not in exts:
                    raise ValueError(
                        f"{where} has no .{ext} member (it has {exts}); pass "
                        f"on_error='skip' to read such samples as weight-0 padding rows"
                    )
                m = lo + exts.index(ext)
                start = int(index["member_offset"][m])
                member = data[start : start + int(index["member_size"][m])]
                out[ext] = decode_member(
                    kind, member, f"{where}, member .{ext}", self.output_shape, self.anti_aliasing
                )
        except ValueError as error:
            if self.on_error == "raise":
                raise
            if i not in self.skipped:
                self.skipped[i] = str(error)
                warnings.warn(f"skipped (weight 0): {error}", stacklevel=2)
            return None
        return out

    def read_fields(self, ids: np.ndarray) -> dict[str, np.ndarray]:
        """Fields of samples ``ids`` as batch arrays; skipped rows padded, weighted 0."""
        rows, where = self.read_rows(ids)
        out = {}
        for ext, kind in self.decode_spec.items():
            like = next((row[ext] for row in rows if row is not None), None)
            values = [
                row[ext] if row is not None else placeholder(kind, like, self.output_shape, where)
                for row in rows
            ]
            out[ext] = stack(values, ext, where)
        if self.on_error == "skip":
            out[WEIGHT] = np.array([row is not None for row in rows], dtype=np.float32)
        return out

    def get_config(self) -> dict[str, Any]:
        """Returns the arguments that rebuild this source.

        Raises:
            ValueError: if it was given a filesystem object, which a config cannot hold.
        """
        return {
            "urls_or_uri": self.paths_or_uri,
            "decode": self.decode_spec,
            "output_shape": None if self.output_shape is None else list(self.output_shape),
            "on_error": self.on_error,
            "anti_aliasing": self.anti_aliasing,
            **self.storage_config(),
        }
