"""TFRecord framing, read and written by hand so corruption is located, not fatal.

A TFRecord file is a sequence of: u64 length, u32 masked crc32c(length), data, u32 masked
crc32c(data). TensorFlow's own readers stop the whole read at the first bad checksum; this
reader reports where it broke (and keeps going when only a record's data CRC is bad, since the
framing is still intact), so a corrupt file becomes dead letters instead of a failed job.
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Iterator

import google_crc32c


def masked_crc32c(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


@dataclasses.dataclass(frozen=True)
class Frame:
    """One TFRecord read: `data` when `error` is empty; `fatal` when the file cannot go on."""
    index: int
    offset: int
    data: bytes = b""
    error: str = ""
    fatal: bool = False


def _read_exact(f, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = f.read(left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_frames(f) -> Iterator[Frame]:
    """TFRecord framing: u64 length, u32 masked crc(length), data, u32 masked crc(data)."""
    index, offset = 0, 0
    while True:
        header = _read_exact(f, 12)
        if not header:
            return
        if len(header) < 12:
            yield Frame(index, offset, error=f"truncated header ({len(header)} of 12 bytes)",
                        fatal=True)
            return
        (length,), (length_crc,) = struct.unpack("<Q", header[:8]), struct.unpack("<I", header[8:])
        if masked_crc32c(header[:8]) != length_crc:
            yield Frame(index, offset, error="length checksum mismatch", fatal=True)
            return
        data = _read_exact(f, length)
        footer = _read_exact(f, 4)
        if len(data) < length or len(footer) < 4:
            yield Frame(index, offset, error="truncated record", fatal=True)
            return
        if masked_crc32c(data) != struct.unpack("<I", footer)[0]:
            yield Frame(index, offset, data, error="data checksum mismatch")
        else:
            yield Frame(index, offset, data)
        index += 1
        offset += 16 + length


def write_frame(f, data: bytes) -> None:
    length = struct.pack("<Q", len(data))
    f.write(length + struct.pack("<I", masked_crc32c(length)))
    f.write(data + struct.pack("<I", masked_crc32c(data)))
