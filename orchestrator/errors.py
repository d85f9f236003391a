"""The errors a user can fix: each CLI answers them with their message and exit code 2,
before (or instead of) spending compute."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or environment; `lines` holds one located message per problem."""

    def __init__(self, *lines: str):
        super().__init__("\n".join(lines))
        self.lines = list(lines)


class SpecError(UserError):
    """An invalid experiment file."""


class StoreUnreachable(UserError):
    """The tracking URI names a store that cannot be reached or written."""


class ClusterError(UserError):
    """The Ray cluster cannot run this sweep as specified (for example no GPUs)."""


class DriverBusy(UserError):
    """Another driver is running this sweep right now."""


class NoSweep(UserError, LookupError):
    """The store holds no such sweep yet."""
