"""The one exception hierarchy of the analyzer.

::

    AnalyzerError                 anything the analyzer raises on purpose
    ├── UsageError                the user asked for something impossible (bad id, bad option)
    │   └── AmbiguousReference    an id prefix or name matches several objects
    ├── SnapshotError             the evidence as a whole cannot be used
    │   ├── NotASnapshot          not a tar/compressed tar/directory we can read
    │   ├── NoDataRootFound       readable, but no Docker data-root inside
    │   └── UnsupportedCompression
    ├── FormatError               one artefact's bytes do not decode
    │   ├── BboltFormatError
    │   ├── LogFormatError
    │   ├── JSONFormatError
    │   └── TarSplitFormatError
    └── ExportError               writing a case or an export failed

Rule: raise when a unit of work cannot go on; record an ``Issue`` (see
``analyzer.issues``) when one piece of evidence is bad and the rest can still be
read. Foreign exceptions (``tarfile``, ``zstandard``, ``json``, ``struct``...)
are translated at the edge with ``raise ... from exc``.
"""

from __future__ import annotations


class AnalyzerError(Exception):
    """Base class of every error the analyzer raises on purpose."""

    #: process exit status the CLI uses for this error
    exit_code = 3


class UsageError(AnalyzerError):
    """The request cannot be satisfied (unknown object, bad option)."""

    exit_code = 2


class AmbiguousReference(UsageError):
    """An id prefix or a name matches more than one object."""


class SnapshotError(AnalyzerError):
    """The evidence as a whole cannot be used."""

    exit_code = 3


class NotASnapshot(SnapshotError):
    """The input is neither a (compressed) tar nor a directory."""


class NoDataRootFound(SnapshotError):
    """The input is readable but holds no Docker data-root."""


class UnsupportedCompression(SnapshotError):
    """The input is compressed with a format we cannot decode."""


class FormatError(AnalyzerError):
    """The bytes of one artefact do not decode."""


class BboltFormatError(FormatError):
    """A bbolt database page or meta is invalid."""


class LogFormatError(FormatError):
    """A container log record is malformed."""


class JSONFormatError(FormatError):
    """A JSON artefact is malformed or too large."""


class TarSplitFormatError(FormatError):
    """A tar-split.json.gz stream is malformed."""


class ExportError(AnalyzerError):
    """Writing a case folder or an export failed."""

    exit_code = 3
