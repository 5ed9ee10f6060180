"""Docker timestamps → pandas UTC timestamps (ns precision).

Docker writes RFC3339Nano with 0–9 fraction digits, ``Z`` or a numeric offset
(``lastUpdated`` uses the host's local offset), and ``0001-01-01T00:00:00Z``
for "never". Python's ``datetime`` keeps only µs, so we parse with pandas,
which keeps ns. Unparseable or zero times become ``None`` (NA in tables); the
original text is kept in ``*_raw`` columns where it matters.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

ZERO_PREFIX = "0001-01-01"


def parse_time(value: Any) -> pd.Timestamp | None:
    """Parse an RFC3339(Nano) string to a UTC timestamp; ``None`` for zero/invalid."""
    if not isinstance(value, str) or not value or value.startswith(ZERO_PREFIX):
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, OverflowError):
        return None
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return ts.tz_convert("UTC")


def from_ns(ns: int | None) -> pd.Timestamp | None:
    """A UTC timestamp from ns since the epoch."""
    return None if ns is None else pd.Timestamp(ns, unit="ns", tz="UTC")
