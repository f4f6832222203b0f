"""The member index of a WebDataset tar shard: samples, their byte spans and members.

NOTE [ WebDataset samples ]
A sample is a run of consecutive regular files of the tar that share a key, as the
``webdataset`` library groups them (``tariterators.group_by_keys``): a member's key is
its path up to the first dot of its base name and its extension the rest, lower-cased
(``a/b.seg.png``: key ``a/b``, extension ``seg.png``). Names without a dot, metadata
files (``__...__``) and anything but regular files are skipped; a key that comes back
after another one starts a new sample; an extension twice in one sample is an error, as
in ``webdataset``. A sample's *span* runs from its first member's header to the end of
its last member's data: one ranged read gets all of it, and consecutive samples' spans
are at most 511 bytes of padding apart.
"""

from __future__ import annotations

import re
import tarfile
from typing import BinaryIO

import numpy as np

_KEY = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")  # webdataset's base_plus_ext
_META = re.compile(r"__[^/]*__($|/)")


def split_name(name: str) -> tuple[str, str] | None:
    """``(key, extension)`` of a member name as WebDataset splits it, or ``None``.

    Example:
        >>> split_name("train/0001.seg.PNG"), split_name("README")
        (('train/0001', 'seg.png'), None)
    """
    match = _KEY.match(name)
    if match is None:
        return None
    return match.group(1), match.group(2).lower()


def _add(
    member: tarfile.TarInfo,
    size: int,
    name: str,
    keys: list[str],
    spans: list[list[int]],
    first: list[int],
    exts: list[str],
    offsets: list[int],
    sizes: list[int],
) -> None:
    """Adds one tar member to the index lists being built by `scan_tar`."""
    split = split_name(member.name)
    meta = "/" not in member.name and member.name.startswith("__") and member.name.endswith("__")
    if not member.isreg() or split is None or meta or _META.match(member.name):
        return
    if member.offset_data + member.size > size:
        raise ValueError(
            f"tar shard {name}: member {member.name!r} is truncated ({member.size} bytes "
            f"from offset {member.offset_data}, the file has {size}); the shard was cut "
            f"short: re-write it"
        )
    key, ext = split
    if not keys or key != keys[-1]:
        keys.append(key)
        spans.append([member.offset, 0])
        first.append(len(exts))
    elif ext in exts[first[-1] :]:
        raise ValueError(
            f"tar shard {name}: sample {key!r} has two members with extension {ext!r} "
            f"({member.name!r}); give each sample's files distinct names"
        )
    spans[-1][1] = member.offset_data + member.size
    exts.append(ext)
    offsets.append(member.offset_data - spans[-1][0])
    sizes.append(member.size)


def scan_tar(file: BinaryIO, size: int, name: str) -> dict[str, np.ndarray]:
    """Indexes the samples of one tar shard (NOTE [ WebDataset samples ]).

    Args:
        file: the shard, seekable, at its start.
        size: its size in bytes.
        name: its name in errors.

    Returns:
        ``span_offsets``, ``span_lengths`` and ``keys`` per sample; ``member_first``
        (each sample's first member, and the member count last), ``member_ext``,
        ``member_offset`` (from the sample's span start) and ``member_size`` per member.

    Raises:
        ValueError: naming the shard for a file that is not a tar, a member cut short
            by the end of the file, damaged headers, or an extension twice in a sample.
    """
    keys: list[str] = []
    spans: list[list[int]] = []  # [first header, end of last data]
    first: list[int] = []
    exts: list[str] = []
    offsets: list[int] = []
    sizes: list[int] = []
    with file:
        try:
            with tarfile.open(fileobj=file, mode="r:") as archive:
                for member in archive:
                    archive.members = []  # the index keeps what it needs; tarfile need not
                    _add(member, size, name, keys, spans, first, exts, offsets, sizes)
                end = archive.offset
        except tarfile.TarError as error:
            raise ValueError(
                f"tar shard {name}: cannot read it as a tar file ({error}); a damaged or "
                f"truncated shard, or not a tar file: re-write it"
            ) from None
        # tarfile stops quietly at a damaged or cut header: what follows must be the
        # zero blocks that end an archive (or nothing).
        file.seek(end)
        rest = file.read(min(1024, max(0, size - end)))
        if rest.strip(b"\0"):
            raise ValueError(
                f"tar shard {name}: damaged or truncated tar header at offset {end}; the "
                f"members after it cannot be read: re-write the shard"
            )
    starts = np.array([s for s, _ in spans], dtype=np.int64)
    return {
        "span_offsets": starts,
        "span_lengths": np.array([e for _, e in spans], dtype=np.int64) - starts,
        "keys": np.array(keys, dtype=str),
        "member_first": np.array([*first, len(exts)], dtype=np.int64),
        "member_ext": np.array(exts, dtype=str),
        "member_offset": np.array(offsets, dtype=np.int64),
        "member_size": np.array(sizes, dtype=np.int64),
    }
