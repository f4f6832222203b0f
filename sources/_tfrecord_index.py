"""The TFRecord container: record offsets from one pass over the headers, and CRC checks.

NOTE [ TFRecord framing ]
A TFRecord file is a sequence of records, each::

    uint64 length              (little-endian)
    uint32 masked_crc(length)  (masked crc32c of those 8 bytes)
    byte   data[length]
    uint32 masked_crc(data)

with ``masked_crc(x) = ((c >> 15 | c << 17) + 0xA282EAD8) mod 2**32`` for
``c = crc32c(x)``. An index is the offset and length of every record: the scan reads
the 12-byte headers and seeks over the data (one pass; a remote file is fetched in
large blocks, ``sources/_shard_reader.py``), checking each header's CRC and that the
record ends inside the file. The data's CRC is checked when the record is read.
crc32c comes from ``google-crc32c`` (Google's C library, hardware-accelerated where
the CPU has CRC instructions).
"""

from __future__ import annotations

import struct
from typing import BinaryIO

import numpy as np

HEADER = 12  # length and its CRC
FOOTER = 4  # the data's CRC
_MASK_DELTA = 0xA282EAD8
_GZIP_MAGIC = b"\x1f\x8b"


class CorruptRecordError(ValueError):
    """A TFRecord record that is truncated or fails its CRC check.

    Attributes:
        path: the file (a URI without secrets for remote files).
        record: the record's number in the file, from 0.
    """

    def __init__(self, path: str, record: int, reason: str) -> None:
        super().__init__(f"corrupt TFRecord file {path}, record {record}: {reason}")
        self.path = path
        self.record = record

    def __reduce__(self) -> tuple:  # keeps its fields across processes
        reason = str(self).split(f"record {self.record}: ", 1)[1]
        return (CorruptRecordError, (self.path, self.record, reason))


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked crc32c of ``data``.

    Example:
        >>> hex(masked_crc32c(b"\\x00" * 8))
        '0x7980329'
    """
    import google_crc32c

    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def scan_records(file: BinaryIO, size: int, name: str) -> dict[str, np.ndarray]:
    """Indexes the records of one TFRecord file.

    Args:
        file: the file, seekable, at its start.
        size: its size in bytes.
        name: its name in errors.

    Returns:
        ``{"span_offsets", "span_lengths"}``: each record's first byte and its length
        with header and footer, int64.

    Raises:
        CorruptRecordError: naming the file and record for a header whose CRC fails
            or a record cut short by the end of the file.
        ValueError: for a GZIP-compressed file (see `TFRecordSource`).
    """
    offsets, lengths = [], []
    position = 0
    with file:
        while position < size:
            header = file.read(HEADER)
            record = len(offsets)
            if len(header) < HEADER:
                raise CorruptRecordError(
                    name,
                    record,
                    f"truncated header ({len(header)} of {HEADER} bytes at "
                    f"offset {position}); the file was cut short: re-write it",
                )
            if record == 0 and header.startswith(_GZIP_MAGIC):
                raise ValueError(f"{name} is GZIP-compressed; {compression_refusal()}")
            (length,) = struct.unpack_from("<Q", header)
            (expected,) = struct.unpack_from("<I", header, 8)
            if masked_crc32c(header[:8]) != expected:
                raise CorruptRecordError(
                    name,
                    record,
                    f"the length's CRC fails at offset {position} (a damaged "
                    f"file, not a TFRecord file, or a compressed one: {compression_refusal()})",
                )
            end = position + HEADER + length + FOOTER
            if end > size:
                raise CorruptRecordError(
                    name,
                    record,
                    f"truncated: {length} bytes of data at offset {position} "
                    f"need {end} bytes, the file has {size}; re-write the file or drop the "
                    f"partial record",
                )
            offsets.append(position)
            lengths.append(HEADER + length + FOOTER)
            position = end
            file.seek(position)
    return {
        "span_offsets": np.array(offsets, dtype=np.int64),
        "span_lengths": np.array(lengths, dtype=np.int64),
    }


def record_data(span: bytes, name: str, record: int) -> bytes:
    """The data of one record's span (header, data, footer), after its CRC checks.

    Raises:
        CorruptRecordError: naming the file and record when a CRC fails.
    """
    (expected,) = struct.unpack_from("<I", span, len(span) - FOOTER)
    data = span[HEADER : len(span) - FOOTER]
    if (
        masked_crc32c(data) != expected
        or masked_crc32c(span[:8]) != struct.unpack_from("<I", span, 8)[0]
    ):
        raise CorruptRecordError(
            name, record, "the data fails its CRC check (masked crc32c): the file is damaged"
        )
    return data


def compression_refusal() -> str:
    """Why compressed TFRecord files are refused, and what to do instead."""
    return (
        "compressed TFRecord files (GZIP, ZLIB) cannot be read at random (a record's "
        "place is known only after decompressing everything before it), so "
        "TFRecordSource reads uncompressed files only. Decompress them once, e.g. with "
        "tf.data.TFRecordDataset(path, compression_type='GZIP') into "
        "tf.io.TFRecordWriter(new_path), or 'gunzip' for GZIP files"
    )
