"""The one error base of genmat.

Every error a user can cause — a bad value, a bad file, a dataset that does not verify, a
service that is not there — is a :class:`GenmatError`. The CLI turns each into one line
on stderr and exit code 2; anything else is a bug in genmat and keeps its traceback
(exit 1, with a line asking for a report). ``field``, ``value`` and ``allowed`` name what
was wrong where that applies.

This module imports nothing of genmat: every layer may raise these.
"""

from __future__ import annotations

from typing import Any

__all__ = ["GenmatError", "InputError", "IntegrityError", "ServiceError"]


class GenmatError(Exception):
    """Base of every user-facing genmat error. ``field``/``value``/``allowed``: the input
    at fault, as given, and what would have been accepted (None where not applicable)."""

    field: str | None = None
    value: Any = None
    allowed: str | None = None


class InputError(GenmatError, ValueError):
    """A value, option, configuration or file content that is not allowed.

    ``InputError(message)`` or ``InputError(field=…, value=…, allowed=…)``, which writes
    ``field = value is outside the allowed range allowed``."""

    def __init__(self, message: str | None = None, *, field: str | None = None, value: Any = None,
                 allowed: str | None = None) -> None:
        self.field, self.value, self.allowed = field, value, allowed
        if message is None:
            message = f"{field} = {value!r} is outside the allowed range {allowed}"
        super().__init__(message)


class IntegrityError(GenmatError, RuntimeError):
    """Stored data that does not verify (corrupt, edited, missing, of another kind)."""


class ServiceError(GenmatError, RuntimeError):
    """A service genmat needs (a tracking server, a Prefect API) is not reachable or refused."""
