"""Reading single table cells: JSON text columns and pandas missing values.

Tables keep lists and maps as JSON text (``*_json`` columns) and missing values
as pandas NA; these two helpers turn a cell back into a plain Python value.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd


def loads_json(text: Any) -> Any:
    """A JSON text cell as a value; ``None`` for NA, non-text or malformed text."""
    if not isinstance(text, str):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def na(value: Any) -> Any:
    """``None`` for pandas NA/NaT/NaN (and ``None``), the value itself otherwise."""
    try:
        if value is None or pd.isna(value):
            return None
    except (TypeError, ValueError):  # lists, arrays: never "missing"
        return value
    return value
