"""Detect an evidence file's format by content and open its decompressed stream.

Detection uses magic bytes, never the file name: ``.tar``, gzip (``.tgz``,
``.tar.gz``), zstd, xz and bzip2 are recognised. Decompression uses the standard
library (gzip, lzma, bz2) and ``zstandard``; their exceptions are translated
into issues by the tar reader.

:func:`open_reader` is what the tar reader uses: it reads the evidence file once,
hashes every byte of it (sha256) and hands out large decompressed chunks. So that
reading, hashing, decompression and tar parsing overlap on two cores, the work
moves off the parsing thread where that pays (measured in ``benchmarks/README.md``):

* plain tar: a thread reads and hashes (``hashlib`` releases the GIL on large
  buffers);
* zstd: a thread reads, hashes and decompresses (``zstandard`` releases the GIL);
* gzip: a thread reads and hashes the file and feeds it to a ``pigz -dc`` (or
  ``gzip -dc``) subprocess, whose output the parser reads. An in-process
  ``GzipFile`` in a thread was rejected: it holds the GIL for much of its work and
  made gzip 44 % slower. Without either program, gzip is decompressed in-process.
* xz, bzip2: in-process, in the parsing thread, as before.

Each way reads the evidence file exactly once, and the hash covers every byte of it,
also the bytes after the end of the archive.
"""

from __future__ import annotations

import bz2
import fcntl
import gzip
import hashlib
import lzma
import os
import queue
import shutil
import subprocess
import threading
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


#: evidence bytes per read, and the size of the decompressed chunks handed out
CHUNK = 4 << 20
#: chunks waiting between the reader thread and the parser (bounds memory)
QUEUE_DEPTH = 4
#: set to ``python`` to keep every decompressor in-process (tests, no subprocess)
ENV_DECOMPRESSOR = "DRA_DECOMPRESSOR"


class HashTap:
    """File wrapper that sha256-hashes and counts every byte read through it."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.sha.update(data)
        self.count += len(data)
        return data

    def readinto(self, b: bytearray | memoryview) -> int:  # used by some decompressors
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        """Read (and hash) whatever is left of the evidence file."""
        while self.read(CHUNK):
            pass


class EvidenceReader:
    """Decompressed chunks of the evidence; ``sha``/``count`` cover the evidence bytes.

    ``read1`` returns the next chunk (``b""`` at the end) and raises the
    decompressor's error after the last good chunk; ``finish`` reads and hashes
    whatever the parser did not need and releases threads and processes.
    """

    tap: HashTap  # every reader hashes the evidence bytes through one tap

    @property
    def sha(self) -> "hashlib._Hash":
        """sha256 of the evidence bytes read so far."""
        return self.tap.sha

    @property
    def count(self) -> int:
        """Evidence bytes read so far."""
        return self.tap.count

    def read1(self, n: int = -1) -> bytes:  # pragma: no cover - interface
        raise NotImplementedError

    def finish(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class _InlineReader(EvidenceReader):
    """Decompression in the calling thread (xz, bzip2, gzip without pigz/gzip)."""

    def __init__(self, raw: BinaryIO, fmt: str) -> None:
        self.tap = HashTap(raw)
        self.stream = open_decompressed(self.tap, fmt)  # type: ignore[arg-type]
        # read1: one decompression step per call, so an error never discards
        # bytes that were already decoded within the same call
        self._read = getattr(self.stream, "read1", None) or self.stream.read

    def read1(self, n: int = -1) -> bytes:
        return self._read(CHUNK if n < CHUNK else n)

    def finish(self) -> None:
        self.tap.drain()


class _ThreadReader(EvidenceReader):
    """A thread produces the chunks (plain: read+hash; zstd: read+hash+decompress)."""

    _END = b""

    def __init__(self, raw: BinaryIO, fmt: str) -> None:
        self.tap = HashTap(raw)
        self.fmt = fmt
        self.q: queue.Queue = queue.Queue(QUEUE_DEPTH)
        self.discard = False  # the parser is done: only hash the rest
        self.done = False
        self.thread = threading.Thread(target=self._run, name="dra-reader", daemon=True)
        self.thread.start()

    def _chunks(self):
        if self.fmt == "zstd":
            import zstandard

            reader = zstandard.ZstdDecompressor().stream_reader(
                self.tap, read_size=1 << 20, read_across_frames=True)
            while not self.discard:
                chunk = reader.read1(CHUNK)
                if not chunk:
                    return
                yield chunk
        else:
            while not self.discard:
                chunk = self.tap.read(CHUNK)
                if not chunk:
                    return
                yield chunk

    def _run(self) -> None:
        item: bytes | BaseException = self._END
        try:
            for chunk in self._chunks():
                if self.discard:
                    break
                self.q.put(chunk)
        except BaseException as exc:  # handed to the parser after the good chunks
            item = exc
        try:
            self.tap.drain()
        except BaseException as exc:  # pragma: no cover - an I/O error on the evidence
            item = exc
        self.q.put(item)

    def read1(self, n: int = -1) -> bytes:
        if self.done:
            return b""
        item = self.q.get()
        if isinstance(item, BaseException):
            self.done = True
            raise item
        if not item:
            self.done = True
        return item

    def finish(self) -> None:
        self.discard = True
        while not self.done:  # unblock the thread; it hashes the rest, then ends
            try:
                self.read1()
            except BaseException:  # noqa: BLE001 - the stream is no longer wanted
                self.done = True
        self.thread.join()


class _PipeReader(EvidenceReader):
    """``pigz -dc``/``gzip -dc`` in a subprocess; a thread reads, hashes and feeds it."""

    def __init__(self, raw: BinaryIO, argv: list[str]) -> None:
        self.tap = HashTap(raw)
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, bufsize=0)
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:  # fewer, larger reads and writes
                fcntl.fcntl(pipe.fileno(), 1031, 1 << 20)  # F_SETPIPE_SZ
            except OSError:  # pragma: no cover - not Linux, or a lower limit
                pass
        self.fd = self.proc.stdout.fileno()  # type: ignore[union-attr]
        self._view = memoryview(bytearray(CHUNK))
        self.feeding = True
        self.done = False
        self.feeder_error: BaseException | None = None
        self.thread = threading.Thread(target=self._feed, name="dra-feeder", daemon=True)
        self.thread.start()

    def _feed(self) -> None:
        stdin = self.proc.stdin
        try:
            while True:
                chunk = self.tap.read(CHUNK)
                if not chunk:
                    break
                if self.feeding:
                    try:
                        stdin.write(chunk)  # type: ignore[union-attr]
                    except (BrokenPipeError, OSError):  # the decompressor stopped
                        self.feeding = False
        except BaseException as exc:  # pragma: no cover - an I/O error on the evidence
            self.feeder_error = exc
        finally:
            try:
                stdin.close()  # type: ignore[union-attr]
            except OSError:
                pass

    def read1(self, n: int = -1) -> bytes:
        if self.done:
            return b""
        view = self._view  # one buffer for every read: a fresh 4 MiB per call piled up
        got = 0            # in the heap (+140 MB at 5*10^4 members)
        while got < CHUNK:
            k = os.readv(self.fd, [view[got:]])
            if not k:
                break
            got += k
        if got:
            return bytes(view[:got])
        self.done = True
        rc = self.proc.wait()
        err = self.proc.stderr.read().decode("utf-8", "replace").strip()  # type: ignore[union-attr]
        if rc != 0 and not (rc == 2 and "trailing garbage" in err):
            text = err.rpartition(": ")[2] or f"exit status {rc}"
            if any(w in err for w in ("unexpected end", "incomplete", "truncated")):
                raise EOFError(f"compressed stream ended early ({text})")
            raise OSError(f"damaged compressed stream ({text})")
        return b""

    def finish(self) -> None:
        self.feeding = False
        if self.proc.poll() is None:
            self.proc.kill()
        self.thread.join()
        self.proc.wait()
        for pipe in (self.proc.stdout, self.proc.stderr):
            pipe.close()  # type: ignore[union-attr]
        if self.feeder_error is not None:  # pragma: no cover
            raise self.feeder_error


def gzip_program() -> list[str] | None:
    """The external gzip decompressor to use, or ``None`` (in-process)."""
    if os.environ.get(ENV_DECOMPRESSOR) == "python":
        return None
    for name, argv in (("pigz", ["-dc"]), ("gzip", ["-dc"])):
        path = shutil.which(name)
        if path:
            return [path, *argv]
    return None


def open_reader(raw: BinaryIO, fmt: str, threads: bool = True) -> EvidenceReader:
    """The reader of an evidence file opened at its start (``fmt`` from :func:`sniff`)."""
    inline = not threads or os.environ.get(ENV_DECOMPRESSOR) == "python"
    if fmt in ("tar", "none", "zstd") and not inline:
        return _ThreadReader(raw, fmt)
    if fmt == "gzip" and not inline:
        argv = gzip_program()
        if argv is not None:
            return _PipeReader(raw, argv)
    return _InlineReader(raw, fmt)


__all__ = ["sniff", "open_decompressed", "open_reader", "decompression_errors", "CHUNK",
           "HashTap", "EvidenceReader"]
