"""Find Docker data-roots inside a snapshot by structure, not by name.

A data-root can sit under any prefix (``var/lib/docker``, ``docker``, the archive
root, a custom ``--data-root`` name, ``<root>/100000.100000`` with userns-remap).
While the snapshot is read, every member path is offered to
:meth:`RootFinder.observe`; a handful of file names are *markers* whose
position reveals the prefix of the data-root that holds them. After the pass,
:meth:`RootFinder.candidates` ranks the prefixes by how many different kinds
of marker they hold.

Reference: ``shared/docs/docker-root-format.md`` §1.1 (directory map), §1.4
(containerd roots), §1.5 (pre-1.10 layout).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

from analyzer.sources.base import Prefilter

HEX64 = r"[0-9a-f]{64}"

#: marker name → regex on a full member path; group 1 is the data-root prefix
#: (empty string = the snapshot root). Each marker kind counts once per prefix.
MARKERS: dict[str, re.Pattern[str]] = {
    "repositories": re.compile(r"^(?:(.*)/)?image/[^/]+/repositories\.json$"),
    "imagedb": re.compile(rf"^(?:(.*)/)?image/[^/]+/imagedb/content/sha256/{HEX64}$"),
    "layerdb": re.compile(rf"^(?:(.*)/)?image/[^/]+/layerdb/sha256/{HEX64}/diff$"),
    "container": re.compile(rf"^(?:(.*)/)?containers/{HEX64}/(?:config\.v2\.json|config\.json)$"),
    "hostconfig": re.compile(rf"^(?:(.*)/)?containers/{HEX64}/hostconfig\.json$"),
    "volumes": re.compile(r"^(?:(.*)/)?volumes/metadata\.db$"),
    "network": re.compile(r"^(?:(.*)/)?network/files/local-kv\.db$"),
    "engine-id": re.compile(r"^(?:(.*)/)?engine-id$"),
    "graph": re.compile(rf"^(?:(.*)/)?graph/{HEX64}/json$"),
    "repositories-v1": re.compile(r"^(?:(.*)/)?repositories-[a-z0-9-]+$"),
    "containerd": re.compile(r"^(?:(.*)/)?containerd/daemon/io\.containerd\.metadata\.v1\.bolt/meta\.db$"),
}

#: a containerd root (its metadata database); group 1 is the containerd root's prefix
CONTAINERD_ROOT = re.compile(r"^(?:(.*)/)?io\.containerd\.metadata\.v1\.bolt/meta\.db$")

#: a member's last path component must be one of these for any marker to match
#: (or see :data:`PREFILTER`; a set lookup per member keeps the scan cheap)
_NAMES = {"repositories.json", "diff", "config.v2.json", "config.json", "hostconfig.json",
          "metadata.db", "local-kv.db", "engine-id", "json", "meta.db"}


#: the paths :meth:`RootFinder.observe` looks at (its cheap first test)
PREFILTER = Prefilter(names=frozenset(_NAMES), name_length=64, prefixes=("repositories-",))


@dataclass(frozen=True)
class RootCandidate:
    """One data-root found in a snapshot."""

    prefix: str  # path of the data-root inside the snapshot ("" = the snapshot root)
    markers: tuple[str, ...]  # kinds of marker found under it

    @property
    def score(self) -> int:
        """How strongly the structure says "this is a data-root"."""
        return len(self.markers)


class RootFinder:
    """Collects marker hits during the pass and ranks data-root prefixes."""

    def __init__(self) -> None:
        self._hits: dict[str, set[str]] = defaultdict(set)
        self._containerd: set[str] = set()

    def observe(self, path: str, name: str) -> None:
        """Offer one member path (and its last component) to the finder."""
        if not PREFILTER.passes(path, name):
            return
        for marker, pattern in MARKERS.items():
            m = pattern.match(path)
            if m:
                self._hits[m.group(1) or ""].add(marker)
        if name == "meta.db":
            m = CONTAINERD_ROOT.match(path)
            if m:
                self._containerd.add(m.group(1) or "")

    def containerd_roots(self) -> list[str]:
        """Prefixes of every containerd root (``io.containerd.*`` folders) met, sorted."""
        return sorted(self._containerd)

    def candidates(self) -> list[RootCandidate]:
        """Data-roots, strongest first. A prefix needs two marker kinds, or one
        strong one (image metadata or a container config)."""
        strong = {"repositories", "imagedb", "layerdb", "container", "graph"}
        found = [RootCandidate(p, tuple(sorted(m))) for p, m in self._hits.items()
                 if len(m) >= 2 or m & strong]
        # strongest first; on ties prefer the shallower prefix (a docker-in-docker
        # root inside a layer directory is deeper than the host's own root)
        return sorted(found, key=lambda c: (-c.score, c.prefix.count("/"), c.prefix))
