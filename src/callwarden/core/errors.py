"""Errors the core and services raise; adapters translate them (HTTP status, CLI exit code)."""

from __future__ import annotations


class CallwardenError(Exception):
    """Base class: a refusal or failure that names what is wrong."""

    def __init__(self, message: str, *, field: str | None = None, clause_ids: tuple[str, ...] = ()):
        super().__init__(message)
        self.message = message
        self.field = field
        self.clause_ids = clause_ids


class NotFound(CallwardenError):
    """The named entity does not exist (or is not visible to the caller)."""


class Conflict(CallwardenError):
    """The request contradicts the current state (duplicate, wrong status)."""


class PolicyRefusal(CallwardenError):
    """A policy clause forbids the change; `clause_ids` says which."""


class InvalidInput(CallwardenError):
    """A value is well-formed but not acceptable (e.g. an unknown clause id)."""


class Forbidden(CallwardenError):
    """The caller's role or tenant does not allow this."""
