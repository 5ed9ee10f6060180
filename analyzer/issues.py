"""Problems found in the evidence, kept as data.

Bad input is normal input: a malformed JSON file, a truncated archive or a
dangling link is recorded as an :class:`Issue` with a stable ``code`` and the
read goes on. Issues become the ``issues`` table of a snapshot, are counted in
every output, and are asserted in tests.

Stable codes (``area.what``) are listed in :data:`CODES`; add new ones there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Iterator

#: every issue code, with the one-line meaning shown to users
CODES: dict[str, str] = {
    "archive.truncated": "the archive ends early; everything before the cut was read",
    "archive.corrupt": "the archive is damaged; reading stopped here",
    "archive.duplicate": "a member appears more than once; the last copy wins",
    "archive.field_range": "a member header field is outside the range any filesystem "
                           "stores (crafted header); recorded as empty",
    "path.escape": "a member path is absolute or climbs out with '..'; it was ignored",
    "path.nonutf8": "a member path is not valid UTF-8; it was decoded with surrogate escapes",
    "link.escape": "a symlink points out of the snapshot; it is never followed",
    "link.dangling": "a link points at nothing in the snapshot",
    "member.too_large": "a metadata file is larger than the capture limit; it was not parsed",
    "json.malformed": "a JSON file does not parse",
    "json.unexpected": "a JSON file parses but has an unexpected shape",
    "bbolt.malformed": "a bbolt database could not be read (fully)",
    "log.malformed": "a log record could not be decoded",
    "log.not_kept": "log records beyond the in-memory budget were not loaded into the logs "
                    "table; `logs` reads them from the evidence",
    "layer.missing": "a layer referenced by an image or container is not in the snapshot",
    "layer.dir_missing": "a layer's driver directory is not in the snapshot",
    "image.invalid": "an image config does not hash to its id (the daemon would reject it)",
    "image.missing": "an image referenced by a tag or container is not in the snapshot",
    "root.multiple": "several data-roots were found; one was chosen",
    "root.partial": "the data-root misses parts a daemon would have",
    "driver.unreadable": "this storage driver's layer contents cannot be read from a tar",
    "driver.unknown": "an unknown folder sits at the top of the data-root",
    "store.containerd_missing": "the root used the containerd image store but the snapshot "
                                "holds no containerd root (tar /var/lib/containerd too)",
    "store.both": "graphdriver and containerd image-store data are both present (a migrated host)",
    "containerd.partial": "a containerd blob or database the image store needs is missing",
    "containerd.multiple": "several containerd roots were found; one was chosen",
    "legacy.leftover": "pre-1.10 image metadata (graph/) sits next to the v2 store (a migrated host)",
    "volume.missing": "a volume referenced by a container is not in the snapshot",
    "parse.error": "an artefact could not be parsed (internal error; see --debug)",
}

SEVERITIES = ("info", "warning", "error")


@dataclass(frozen=True)
class Issue:
    """One problem in the evidence.

    Attributes:
        code: stable identifier from :data:`CODES`.
        message: one human line (what and where).
        path: path inside the snapshot (relative to the data-root when known).
        severity: ``info``, ``warning`` or ``error``.
        detail: exception type or extra context, for ``--debug`` and tests.
    """

    code: str
    message: str
    path: str = ""
    severity: str = "warning"
    detail: str = ""


@dataclass
class IssueLog:
    """Collects issues during a read; iterable, countable, exportable."""

    items: list[Issue] = field(default_factory=list)

    def add(self, code: str, message: str, path: str = "", severity: str = "warning",
            detail: str = "") -> Issue:
        """Record an issue and return it."""
        if code not in CODES:
            raise ValueError(f"unknown issue code {code!r}")
        if severity not in SEVERITIES:
            raise ValueError(f"unknown severity {severity!r}")
        issue = Issue(code, message, path, severity, detail)
        self.items.append(issue)
        return issue

    def extend(self, issues: "IssueLog | list[Issue]") -> None:
        """Append the issues of another log."""
        self.items.extend(issues.items if isinstance(issues, IssueLog) else issues)

    def __iter__(self) -> Iterator[Issue]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def codes(self) -> list[str]:
        """The codes of all issues, in order (handy in tests)."""
        return [i.code for i in self.items]

    def counts(self) -> dict[str, int]:
        """Number of issues per severity."""
        out = {s: 0 for s in SEVERITIES}
        for i in self.items:
            out[i.severity] += 1
        return out

    def records(self) -> list[dict[str, str]]:
        """The issues as plain dicts (rows of the ``issues`` table)."""
        return [asdict(i) for i in self.items]
