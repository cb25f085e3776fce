"""Fixtures for end-to-end tests against real Prometheus and Alertmanager binaries.

A missing binary skips the test on a developer machine and fails it under ``CI=true``, so CI
can never pass by silently skipping the only tests that talk to the real stack.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from sandbox.realstack import find_binary

_TIMINGS = pytest.StashKey[list[str]]()


def require_binary(name: str, package: str) -> str:
    """The binary's path; skip, or fail under ``CI=true``, naming the Debian package."""
    path = find_binary(name)
    if path is not None:
        return path
    message = f"{name} binary not found on PATH (Debian package: {package})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; CI=true requires it: apt-get install {package}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def alertmanager_bin() -> str:
    """Path of the Alertmanager binary (``prometheus-alertmanager`` on Debian)."""
    return require_binary("alertmanager", "prometheus-alertmanager")


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    """Path of the Prometheus binary."""
    return require_binary("prometheus", "prometheus")


@pytest.fixture
def report_timing(request: pytest.FixtureRequest) -> Callable[[str, float], None]:
    """Record a measured duration; all are printed in the terminal summary (no ``-s``)."""
    lines = request.config.stash.setdefault(_TIMINGS, [])

    def report(what: str, seconds: float) -> None:
        lines.append(f"{request.node.name}: {what} {seconds:.2f} s")
        request.node.user_properties.append((what, round(seconds, 3)))

    return report


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    lines = config.stash.get(_TIMINGS, [])
    if lines:
        terminalreporter.section("e2e timings")
        for line in lines:
            terminalreporter.write_line(line)
