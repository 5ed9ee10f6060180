"""Docker's id arithmetic: chain ids and content digests.

Reference: ``shared/docs/docker-root-format.md`` §2 (diffID, chain ID, image ID).
"""

from __future__ import annotations

import hashlib


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def chain_ids(diff_ids: list[str]) -> list[str]:
    """Chain ids of a layer stack, bottom to top.

    ``ChainID(1) = DiffID(1)``; ``ChainID(i) = sha256(ChainID(i-1) + " " + DiffID(i))``
    over the full ``sha256:``-prefixed strings.
    """
    out: list[str] = []
    for diff in diff_ids:
        if not out:
            out.append(diff)
        else:
            out.append(sha256_digest(f"{out[-1]} {diff}".encode()))
    return out


def chain_id(parent: str | None, diff_id: str) -> str:
    """The chain id of a layer with diff id ``diff_id`` on top of chain ``parent``."""
    return diff_id if not parent else sha256_digest(f"{parent} {diff_id}".encode())


def short(ident: str, n: int = 12) -> str:
    """The short form docker prints: ``n`` hex digits without the algorithm prefix."""
    return ident.split(":", 1)[-1][:n]
