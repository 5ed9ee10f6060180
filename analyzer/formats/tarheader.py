"""Tar header primitives shared by every reader of tar bytes.

Decoders of the fields of a 512-byte tar header (octal and GNU base-256
numbers, the header checksum, NUL-terminated strings), of pax extended-header
records and pax times, and the path cleaning that refuses absolute and
climbing names. Used by the evidence reader (``analyzer.sources.tarstream``)
and by the tar-split decoder (``analyzer.formats.tarsplit``), which parses the
headers Docker recorded for each layer.

Reference: POSIX.1-2001 pax format; GNU tar manual "Basic Tar Format".
"""

from __future__ import annotations

BLOCKSIZE = 512


def num(field: bytes) -> int:
    """Decode a tar numeric field (octal text or GNU base-256)."""
    if field and field[0] & 0x80:
        value = int.from_bytes(field, "big") & ~(0x80 << (8 * (len(field) - 1)))
        if field[0] & 0x40:  # negative base-256
            value -= 1 << (8 * len(field) - 1)
        return value
    text = field.split(b"\x00", 1)[0].strip()
    return int(text, 8) if text else 0


def checksum_ok(block: bytes) -> bool:
    try:
        stored = num(block[148:156])
    except ValueError:
        return False
    unsigned = sum(block[:148]) + 256 + sum(block[156:])
    if stored == unsigned:
        return True
    signed = sum((b - 256 if b > 127 else b) for b in block[:148] + block[156:]) + 256
    return stored == signed


def cstr(field: bytes) -> bytes:
    return field.split(b"\x00", 1)[0]


def decode_name(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def pax_time(value: bytes) -> int:
    """pax time ``[-]seconds[.fraction]`` → ns; ``ValueError`` if malformed."""
    text = value.decode("ascii", "replace").strip()
    neg = text.startswith("-")
    sec, _, frac = text[neg:].partition(".")
    if not sec.isdigit() or (frac and not frac.isdigit()):
        raise ValueError(f"not a pax time: {text[:40]!r}")
    ns = int(sec) * 1_000_000_000 + int((frac + "000000000")[:9])
    return -ns if neg else ns


def parse_pax(data: bytes) -> dict[str, bytes]:
    """Parse pax extended header records (``"%d %s=%s\\n"``); values stay bytes."""
    out: dict[str, bytes] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            break
        try:
            length = int(data[pos:space])
        except ValueError:
            break
        if length <= 0 or pos + length > len(data):
            break
        record = data[space + 1:pos + length - 1]  # without the trailing newline
        key, _, value = record.partition(b"=")
        name = key.decode("utf-8", "replace")
        if name in ("GNU.sparse.offset", "GNU.sparse.numbytes"):  # sparse 0.0: repeated
            old = out.get("GNU.sparse.map")
            out["GNU.sparse.map"] = value if old is None else old + b"," + value
        else:
            out[name] = value
        pos += length
    return out


def pax_int(value: bytes) -> int:
    """A non-negative decimal pax value; ``ValueError`` otherwise."""
    text = value.strip()
    if not text.isdigit():
        raise ValueError(f"not a decimal number: {text[:40]!r}")
    return int(text)


def clean_path(raw: str) -> str | None:
    """Normalise a member path; ``None`` if it is absolute or escapes with ``..``.

    ``./a//b/`` becomes ``a/b``; an empty result (the archive root) becomes ``""``.
    """
    if raw.startswith("/"):
        return None
    parts: list[str] = []
    for part in raw.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            return None
        parts.append(part)
    return "/".join(parts)
