"""Real Prometheus and Alertmanager binaries on loopback, for end-to-end tests.

:class:`AlertmanagerProcess` and :class:`PrometheusProcess` write a minimal configuration into
a work directory, start the binary on ``127.0.0.1`` at a free port, wait for ``/-/ready`` and
stop it again (also as context managers). Prometheus evaluates rules given as plain dicts
(:meth:`PrometheusProcess.set_rules`) and sends the resulting alerts to Alertmanager, which
posts version-4 webhooks to the bot's URL with a bearer token, exactly as in production.

The methods block (they poll over HTTP); async tests call them through
``asyncio.to_thread``. Timings are tuned for tests: see ``/work/shared/FACTS.md`` for why
Prometheus must run with ``--rules.alert.resend-delay=1s``.

Errors::

    RealStackError
    └── ProcessStartError   the binary exited or was not ready in time (carries the log tail)
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final, NoReturn, Self
from urllib.parse import urlsplit

import yaml

READY_TIMEOUT: Final = 20.0
STOP_TIMEOUT: Final = 5.0
RECEIVER_NAME: Final = "incident-bot"
RULE_GROUP: Final = "incident-bot-e2e"
_POLL_INTERVAL: Final = 0.05
_LOG_TAIL_LINES: Final = 30
# Alertmanager's Debian binary is renamed; upstream tarballs ship ``alertmanager``.
_ALIASES: Final = {"alertmanager": ("prometheus-alertmanager", "alertmanager")}
# free_port() can race with another process; a retried start picks a new port.
_PORT_ATTEMPTS: Final = 3


class RealStackError(RuntimeError):
    """A real Prometheus or Alertmanager process misbehaved."""


class ProcessStartError(RealStackError):
    """A binary exited early or did not become ready; ``log_tail`` holds its last lines."""

    def __init__(self, message: str, *, name: str, log_path: Path, log_tail: str) -> None:
        super().__init__(f"{message}\n--- last lines of {log_path} ---\n{log_tail}")
        self.name = name
        self.log_path = log_path
        self.log_tail = log_tail


def find_binary(name: str) -> str | None:
    """Find a binary on ``PATH``.

    Args:
        name: ``"prometheus"``, ``"promtool"``, ``"alertmanager"`` or any other program name;
            ``"alertmanager"`` also matches Debian's ``prometheus-alertmanager``.

    Returns:
        The absolute path, or ``None`` if no candidate is installed.
    """
    for candidate in _ALIASES.get(name, (name,)):
        path = shutil.which(candidate)
        if path is not None:
            return path
    return None


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago.

    External binaries cannot report an ephemeral port back, so the port is chosen here and
    passed on the command line; the short race with other processes is handled by retrying.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _http(method: str, url: str, timeout: float = 2.0) -> int:
    """Send a body-less request and return the status code (0 if the server is unreachable)."""
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return 0


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


class _ManagedProcess:
    """One binary listening on a loopback port, with its config and log in ``workdir``."""

    name: str = ""

    def __init__(self, workdir: Path, binary: str | None) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        found = binary or find_binary(self.name)
        if found is None:
            raise RealStackError(f"{self.name} binary not found on PATH")
        self.binary = found
        self.log_path = workdir / f"{self.name}.log"
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234``; only valid after :meth:`start`."""
        if self.port == 0:
            raise RealStackError(f"{self.name} is not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the process has been started and has not exited."""
        return self._proc is not None and self._proc.poll() is None

    def _arguments(self, port: int) -> list[str]:
        raise NotImplementedError

    def _write_config(self) -> None:
        raise NotImplementedError

    def start(self, timeout: float = READY_TIMEOUT) -> None:
        """Write the config, start the binary and wait until ``GET /-/ready`` answers 200.

        Args:
            timeout: Seconds to wait for readiness (per port attempt).

        Raises:
            ProcessStartError: The process exited or was not ready in time; it is stopped.
        """
        if self.running:
            return
        self._write_config()
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            self.port = free_port()
            self._spawn()
            try:
                self._wait_ready(timeout)
                return
            except ProcessStartError as exc:
                self.stop()
                port_taken = "address already in use" in exc.log_tail
                if not port_taken or attempt == _PORT_ATTEMPTS:
                    raise

    def _spawn(self) -> None:
        self._log = self.log_path.open("ab")
        try:
            self._proc = subprocess.Popen(
                [self.binary, *self._arguments(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        except OSError:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                self._fail(f"{self.name} exited with code {self._proc.returncode}")
            if _http("GET", f"{self.url}/-/ready", timeout=1.0) == 200:
                return
            if time.monotonic() > deadline:
                self._fail(f"{self.name} not ready on {self.url} after {timeout:g} s")
            time.sleep(_POLL_INTERVAL)

    def _fail(self, message: str) -> NoReturn:
        if self._log is not None:
            self._log.flush()
        raise ProcessStartError(
            message, name=self.name, log_path=self.log_path, log_tail=_tail(self.log_path)
        )

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Terminate the process (SIGTERM, then SIGKILL after ``timeout`` s); idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of the process log (for failure messages)."""
        return _tail(self.log_path, lines)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class AlertmanagerProcess(_ManagedProcess):
    """A real Alertmanager routing every alert to one webhook receiver, ``incident-bot``.

    Args:
        workdir: Directory for ``alertmanager.yml``, the storage path and the log.
        webhook_url: Where notifications are POSTed (the bot's ``/alertmanager`` endpoint).
        bearer_token: Sent as ``Authorization: Bearer <token>``; ``None`` sends none.
        group_wait: Route ``group_wait`` (delay before a new group's first notification).
        group_interval: Route ``group_interval`` (delay between updates of a group).
        repeat_interval: Route ``repeat_interval`` (resend of an unchanged group).
        group_by: Route ``group_by`` labels.
        binary: Path of the binary; found on ``PATH`` by default.
    """

    name = "alertmanager"

    def __init__(
        self,
        workdir: Path,
        webhook_url: str,
        bearer_token: str | None,
        group_wait: str = "1s",
        group_interval: str = "1s",
        repeat_interval: str = "1h",
        *,
        group_by: Sequence[str] = ("alertname",),
        binary: str | None = None,
    ) -> None:
        super().__init__(workdir, binary)
        self.webhook_url = webhook_url
        self.bearer_token = bearer_token
        self.group_wait = group_wait
        self.group_interval = group_interval
        self.repeat_interval = repeat_interval
        self.group_by = list(group_by)
        self.config_path = workdir / "alertmanager.yml"

    def config(self) -> dict[str, Any]:
        """The ``alertmanager.yml`` content as a dict."""
        webhook: dict[str, Any] = {
            "url": self.webhook_url,
            "send_resolved": True,
            "max_alerts": 0,
        }
        if self.bearer_token is not None:
            webhook["http_config"] = {
                "authorization": {"type": "Bearer", "credentials": self.bearer_token}
            }
        return {
            "route": {
                "receiver": RECEIVER_NAME,
                "group_by": self.group_by,
                "group_wait": self.group_wait,
                "group_interval": self.group_interval,
                "repeat_interval": self.repeat_interval,
            },
            "receivers": [{"name": RECEIVER_NAME, "webhook_configs": [webhook]}],
        }

    def _write_config(self) -> None:
        self.config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))

    def _arguments(self, port: int) -> list[str]:
        return [
            f"--config.file={self.config_path}",
            f"--storage.path={self.workdir / 'alertmanager-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            # Empty disables gossip: no port 9094, no peers to wait for.
            "--cluster.listen-address=",
        ]


class PrometheusProcess(_ManagedProcess):
    """A real Prometheus evaluating rules from :meth:`set_rules`, alerting one Alertmanager.

    Args:
        workdir: Directory for ``prometheus.yml``, ``rules.yml``, the TSDB and the log.
        alertmanager_url: Base URL of the Alertmanager to notify; ``None`` for no alerting.
        evaluation_interval: Global and rule-group evaluation interval.
        extra_args: More command-line flags (e.g. TSDB retention for backfilled data).
        binary: Path of the binary; found on ``PATH`` by default.
    """

    name = "prometheus"

    def __init__(
        self,
        workdir: Path,
        alertmanager_url: str | None,
        evaluation_interval: str = "1s",
        *,
        extra_args: Sequence[str] = (),
        binary: str | None = None,
    ) -> None:
        super().__init__(workdir, binary)
        self.alertmanager_url = alertmanager_url
        self.evaluation_interval = evaluation_interval
        self.extra_args = list(extra_args)
        self.config_path = workdir / "prometheus.yml"
        self.rules_path = workdir / "rules.yml"
        self.tsdb_path = workdir / "prometheus-data"
        self._rules: list[dict[str, Any]] = []

    def config(self) -> dict[str, Any]:
        """The ``prometheus.yml`` content as a dict."""
        config: dict[str, Any] = {
            "global": {
                "evaluation_interval": self.evaluation_interval,
                "scrape_interval": self.evaluation_interval,
            },
            "rule_files": [str(self.rules_path)],
        }
        if self.alertmanager_url is not None:
            parts = urlsplit(self.alertmanager_url)
            target: dict[str, Any] = {
                "scheme": parts.scheme or "http",
                "static_configs": [{"targets": [parts.netloc]}],
            }
            if parts.path.strip("/"):
                target["path_prefix"] = parts.path
            config["alerting"] = {"alertmanagers": [target]}
        return config

    def _write_config(self) -> None:
        self.config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        self._write_rules()

    def _write_rules(self) -> None:
        group = {"name": RULE_GROUP, "interval": self.evaluation_interval, "rules": self._rules}
        self.rules_path.write_text(yaml.safe_dump({"groups": [group]}, sort_keys=False))

    def _arguments(self, port: int) -> list[str]:
        return [
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.tsdb_path}",
            f"--web.listen-address=127.0.0.1:{port}",
            # At the default (1m) the first alert is dropped while the Alertmanager is being
            # discovered, and the first webhook comes a minute late.
            "--rules.alert.resend-delay=1s",
            "--web.enable-lifecycle",
            *self.extra_args,
        ]

    def set_rules(self, rules: list[dict[str, Any]]) -> None:
        """Replace the rule group and, if running, reload Prometheus.

        Each rule is a Prometheus rule as a dict, e.g. ``{"alert": "PodDown", "expr":
        "vector(1) > 0", "for": "0s", "labels": {...}, "annotations": {...}}``. Set the
        rules before :meth:`start` to have them from the first evaluation.

        An empty list makes every alert of the group resolve, but not at once: a reload
        (Prometheus 2.42) empties the notifier's Alertmanager list until the next discovery
        tick (up to 5 s), so Prometheus's own "resolved" is usually dropped and Alertmanager
        resolves the alert when its ``endsAt`` passes, 4 x the resend delay (~4 s) after
        the last send. Alerts added by a reload likewise reach Alertmanager after ~5-6 s.

        Args:
            rules: The group's rules, in order.

        Raises:
            RealStackError: Prometheus refused the reload (e.g. an invalid expression).
        """
        self._rules = [dict(rule) for rule in rules]
        self._write_rules()
        if self.running:
            self.reload()

    def reload(self) -> None:
        """Reload config and rules via ``POST /-/reload``, which answers once it is done.

        Raises:
            RealStackError: The reload failed; the message has the log tail.
        """
        status = _http("POST", f"{self.url}/-/reload", timeout=10.0)
        if status != 200:
            raise RealStackError(f"prometheus reload failed with HTTP {status}\n{self.log_tail()}")

    def wait_for_alertmanager(self, timeout: float = READY_TIMEOUT) -> None:
        """Block until Prometheus lists an active Alertmanager.

        Discovery reports targets every 5 s, counted from start-up; a reload empties the
        list again until the next report. Alerts sent meanwhile are dropped (and resent
        after the resend delay of 1 s).

        Raises:
            RealStackError: No active Alertmanager within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._active_alertmanagers():
                return
            time.sleep(_POLL_INTERVAL * 4)
        raise RealStackError(f"prometheus found no alertmanager after {timeout:g} s")

    def _active_alertmanagers(self) -> list[Any]:
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/alertmanagers", timeout=1.0) as r:
                body = json.load(r)
        except (urllib.error.URLError, OSError, ValueError):
            return []
        active: list[Any] = body.get("data", {}).get("activeAlertmanagers", [])
        return active
