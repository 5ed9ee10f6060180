"""Detect an evidence file's format by content and open its decompressed stream.

Detection uses magic bytes, never the file name: ``.tar``, gzip (``.tgz``,
``.tar.gz``), zstd, xz and bzip2 are recognised. Decompression uses the standard
library (gzip, lzma, bz2) and ``zstandard``; their exceptions are translated
into issues by the tar reader.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
from typing import BinaryIO

from analyzer.errors import NotASnapshot, UnsupportedCompression

MAGICS: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"BZh", "bzip2"),
)
#: formats we recognise but cannot read, with the hint we give
UNSUPPORTED: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "zip"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"\x04\x22\x4d\x18", "lz4"),
    (b"EVF\x09\x0d\x0a\xff\x00", "EWF/E01 disk image"),
    (b"QFI\xfb", "qcow2 disk image"),
)


def looks_like_tar(head: bytes) -> bool:
    """True if ``head`` (at least 512 bytes) starts with a valid tar header."""
    if len(head) < 512:
        return False
    block = head[:512]
    if block[257:262] == b"ustar":
        return True
    # v7 tar: no magic; trust a matching header checksum
    try:
        stored = int(block[148:156].replace(b"\x00", b" ").strip() or b"-1", 8)
    except ValueError:
        return False
    unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:])
    return stored == unsigned and any(block[:100])


def sniff(head: bytes) -> str:
    """Name the container format of ``head``: ``tar`` or a compression name.

    Raises:
        UnsupportedCompression: a known but unsupported format (zip, 7z, disk image).
        NotASnapshot: nothing we know.
    """
    for magic, name in MAGICS:
        if head.startswith(magic):
            return name
    if looks_like_tar(head):
        return "tar"
    for magic, name in UNSUPPORTED:
        if head.startswith(magic):
            raise UnsupportedCompression(
                f"this is a {name}, not a tar; extract or mount it and pass the directory")
    raise NotASnapshot("not a tar archive (plain or gzip/zstd/xz/bzip2 compressed) or a directory")


def open_decompressed(raw: BinaryIO, compression: str) -> BinaryIO:
    """Wrap ``raw`` (positioned at the start) in a decompressing reader."""
    if compression == "tar" or compression == "none":
        return raw
    if compression == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if compression == "xz":
        return lzma.LZMAFile(raw, mode="rb")  # type: ignore[return-value]
    if compression == "bzip2":
        return bz2.BZ2File(raw, mode="rb")  # type: ignore[return-value]
    if compression == "zstd":
        import zstandard  # imported lazily: only zstd evidence needs it

        return zstandard.ZstdDecompressor().stream_reader(  # type: ignore[return-value]
            raw, read_size=1 << 20, read_across_frames=True)
    raise UnsupportedCompression(f"unknown compression {compression!r}")


#: exception types decompressors raise on damaged or truncated input
def decompression_errors() -> tuple[type[BaseException], ...]:
    """The exception classes that mean "the compressed stream is damaged"."""
    import zlib

    errors: list[type[BaseException]] = [EOFError, OSError, zlib.error, lzma.LZMAError]
    try:
        import zstandard

        errors.append(zstandard.ZstdError)
    except ImportError:  # pragma: no cover - zstandard is a pinned requirement
        pass
    return tuple(errors)
