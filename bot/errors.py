"""Exceptions raised by incident-bot.

The tree::

    IncidentBotError
    ├── ConfigError            a setting is missing or invalid (one line, shown at start-up)
    ├── PayloadError           a webhook body is not a valid Alertmanager notification
    ├── StoreError             the SQLite store cannot be opened or written
    ├── KubeError              the Kubernetes API answered an error or was unreachable
    │   └── ReadOnlyViolation  code tried to issue a non-GET request through the reader
    └── PolicyError            a policy file is invalid (policies/schema.py)
"""

from __future__ import annotations


class IncidentBotError(Exception):
    """Base class of every error incident-bot raises on purpose."""


class ConfigError(IncidentBotError):
    """A setting is missing or invalid."""

    def __init__(self, variable: str, problem: str) -> None:
        self.variable = variable
        self.problem = problem
        super().__init__(f"{variable}: {problem}")


class PayloadError(IncidentBotError):
    """A webhook body is not a valid Alertmanager notification."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class StoreError(IncidentBotError):
    """The SQLite store cannot be opened or written."""


class KubeError(IncidentBotError):
    """The Kubernetes API answered an error or could not be reached."""

    def __init__(self, what: str, problem: str, *, status: int | None = None) -> None:
        self.what = what
        self.problem = problem
        self.status = status
        super().__init__(f"{what}: {problem}")


class ReadOnlyViolation(KubeError):
    """Something tried to send a non-GET request through the read-only client."""
