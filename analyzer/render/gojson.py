"""JSON encoded the way the Docker daemon's Go encoder writes it.

Compact separators, HTML escaping off (``<none>`` stays literal), UTF-8 raw,
``\\n \\r \\t`` short escapes and every other control character as ``\\u00XX``
(Python would write ``\\b``/``\\f``), U+2028/U+2029 escaped, dict keys in the
order the caller built them (the caller follows Go struct order; Go sorts map
keys, so callers sort those). One ``\\n`` ends the document, like the API.

Reference: ``docs/engine-api.md`` §0.
"""

from __future__ import annotations

import re
from typing import Any

_ESCAPE = re.compile(r'[\x00-\x1f"\\\u2028\u2029]')
_SHORT = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _string(s: str) -> str:
    return '"' + _ESCAPE.sub(lambda m: _SHORT.get(m.group(), f"\\u{ord(m.group()):04x}"), s) + '"'


def encode(value: Any) -> str:
    """Encode ``value`` (dict, list, str, int, float, bool, None) as Go would."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(int(value)) if value.is_integer() and abs(value) < 1e21 else repr(value)
    if isinstance(value, dict):
        return "{" + ",".join(_string(str(k)) + ":" + encode(v) for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(encode(v) for v in value) + "]"
    raise TypeError(f"cannot encode {type(value).__name__}")


def document(value: Any) -> str:
    """A whole API response body: the encoding plus the trailing newline."""
    return encode(value) + "\n"


def sorted_map(value: Any) -> Any:
    """A Go map: ``None`` stays null, keys sorted bytewise."""
    if value is None:
        return None
    if not isinstance(value, dict):
        return value
    return {k: value[k] for k in sorted(value, key=lambda k: str(k).encode("utf-8", "surrogatepass"))}
