"""One exception tree and one table of exit codes for every phrsync command.

Every failure a user must act on is a :class:`PhrsyncError` subclass carrying its exit code and a Thai and an
English message (and, where there is one, what to do next). The ``phrsync`` group turns one into a message on
stderr and that exit code; library callers (the demo, the web, tests) catch the class they care about. No exit
code means two things.
"""

from __future__ import annotations

from enum import IntEnum


class Exit(IntEnum):
    """The exit codes of every ``phrsync`` command (README, "Exit codes")."""

    OK = 0
    REFUSED = 1  # done, but some input was refused: payloads (by the validator or by PHR), or for import whole
    # files (a broken or empty zip, over an [import] limit, all garbage, failed): fix the data
    USAGE = 2  # a wrong argument, setting, path or facility: nothing was done
    UNDELIVERED = 3  # the run ended with payloads still to send (network, PHR down): runs again later
    AUTH = 4  # PHR refused the login (or another computer sends for the facility)
    LOCKED = 5  # another agent is running on the same state store
    SOURCE = 6  # the data source (the HDC database) failed or could not be reached
    STORE = 7  # a store of phrsync's (staging, outbox/state) cannot be opened or is broken
    INTERRUPTED = 130  # Ctrl+C, as shells report SIGINT


class PhrsyncError(Exception):
    """The root of every user-facing failure. ``str()`` is the bilingual message (Thai first)."""

    exit_code: Exit = Exit.USAGE

    def __init__(self, th: str, en: str | None = None, *, hint: str | None = None) -> None:
        self.th = th
        self.en = en
        self.hint = hint
        super().__init__(self.message)

    @property
    def message(self) -> str:
        text = self.th if self.en is None or self.en == self.th else f"{self.th} / {self.en}"
        return f"{text} ({self.hint})" if self.hint else text

    def __str__(self) -> str:
        return self.message


class UsageError(PhrsyncError):
    """A wrong argument, path or facility code: nothing was done (exit 2)."""

    exit_code = Exit.USAGE


class ConfigError(UsageError):
    """A setting that is misspelled, unknown, of the wrong type or pointing nowhere (exit 2); the message names
    the file, section and key."""


class NotFoundError(UsageError):
    """A path, facility or record that does not exist (exit 2): never an empty success."""


class SourceError(PhrsyncError):
    """The data source (the HDC database, an export) failed or could not be reached (exit 6)."""

    exit_code = Exit.SOURCE


class StoreError(PhrsyncError):
    """One of phrsync's own stores (staging DuckDB, the outbox/state database) cannot be opened (exit 7)."""

    exit_code = Exit.STORE


class AuthError(PhrsyncError):
    """PHR refused the login or the facility (exit 4)."""

    exit_code = Exit.AUTH


class LockedError(PhrsyncError):
    """Another agent holds the state store (exit 5)."""

    exit_code = Exit.LOCKED


class Interrupted(PhrsyncError):
    """Stopped by the user (Ctrl+C); what was committed stays and the next run resumes (exit 130)."""

    exit_code = Exit.INTERRUPTED
