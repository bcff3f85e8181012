"""One exception tree for the whole package.

    ProcessorError                 root: catch this to handle every failure of ours
    ├── ConfigError                a setting is missing or invalid            exit 2
    ├── SourceError                the source folder/URL is missing or matches nothing   exit 3
    ├── DatabaseError              the destination cannot be reached or refuses us       exit 4
    ├── LoadError                  one file could not be staged (carries path and table)
    ├── TransformError             the deals view could not be built          exit 5
    ├── SyncError                  Pipedrive refused or failed (carries status and key)
    │   └── SyncStopped            the run must stop: bad token, daily budget spent, abuse block   exit 6
    └── LockTimeout                another run kept the destination locked for LOCK_TIMEOUT seconds   exit 7

A run where some files failed to load or some deals failed to sync exits 1; Ctrl-C exits 130
and SIGTERM 143 (`Interrupted`, a BaseException like KeyboardInterrupt, outside this tree). Messages never contain passwords or API tokens: URLs are masked before they
reach an exception, and library errors are re-raised as ours with `raise ... from exc`.
"""

from __future__ import annotations

# Every exit code of the command line, for `--help` (the README's table says the same).
EXIT_CODES: tuple[tuple[int, str], ...] = (
    (0, "every file loaded or was skipped as unchanged, and every deal synced"),
    (
        1,
        "some files failed (the others loaded), or some deals failed in Pipedrive, or SYNC_REMOVED_MAX refused "
        "removals; for status: some file is not in",
    ),
    (
        2,
        "invalid configuration: the message names the variable (or each bad SYNC_FIELD_MAP entry), or the extra "
        "to install for a feature",
    ),
    (3, "the source folder, bucket or URL is missing, or no file matches SRC_FILE_NAME"),
    (4, "the database cannot be reached, or refuses the login"),
    (
        5,
        "the deals view cannot be built (a staging table or column is missing: the message says which), or sync "
        "finds no deals view to read",
    ),
    (6, "the sync stopped: bad token, daily budget spent, abuse block or Pipedrive unreachable; the next run goes on"),
    (7, "another run kept the destination locked for LOCK_TIMEOUT seconds: the message names its host and pid"),
    (130, "stopped by Ctrl-C (files being loaded were rolled back)"),
    (143, "stopped by SIGTERM, e.g. docker stop (files being loaded were rolled back)"),
)


class ProcessorError(Exception):
    """Root of every error this package raises on purpose."""

    exit_code = 1


class ConfigError(ProcessorError):
    """A setting is missing or invalid; the message names the variable and the fix."""

    exit_code = 2


class SourceError(ProcessorError):
    """The source folder or URL is missing, unreadable, or matches no file."""

    exit_code = 3


class DatabaseError(ProcessorError):
    """The destination database cannot be reached, or refuses the connection."""

    exit_code = 4


class LoadError(ProcessorError):
    """One file could not be staged."""

    def __init__(self, message: str, *, path: str | None = None, table: str | None = None):
        super().__init__(message)
        self.path = path
        self.table = table


class TransformError(ProcessorError):
    """The deals view could not be built (e.g. a staging table or column is missing)."""

    exit_code = 5


class SyncError(ProcessorError):
    """A Pipedrive request failed; `retryable` says whether trying again may help."""

    def __init__(self, message: str, *, status: int | None = None, key: str | None = None, retryable: bool = False):
        super().__init__(message)
        self.status = status
        self.key = key
        self.retryable = retryable


class SyncStopped(SyncError):
    """The sync cannot go on in this run (bad token, daily budget spent, abuse block)."""

    exit_code = 6


class LockTimeout(ProcessorError):
    """Another run held the destination's lock longer than LOCK_TIMEOUT; the message names it."""

    exit_code = 7


class Interrupted(BaseException):
    """The run was stopped by a signal; `exit_code` is 130 (SIGINT) or 143 (SIGTERM).

    Like KeyboardInterrupt, not an Exception: no `except Exception` on its way (a file's failure
    handling, a logging handler's emit) may take a stop for an error and carry on.
    """

    def __init__(self, signum: int):
        super().__init__(f"stopped by signal {signum}")
        self.exit_code = 128 + signum
