from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.config import SETTINGS_DOC, Route, Settings, parse_routes
from bot.errors import ConfigError

SERVE_ENV = {
    "SLACK_BOT_TOKEN": "xoxb-1",
    "SLACK_SIGNING_SECRET": "s3cret",
    "INCIDENT_BOT_DEFAULT_CHANNEL": "#incidents",
    "INCIDENT_BOT_WEBHOOK_TOKEN": "tok",
}


def test_defaults_need_nothing_outside_serve() -> None:
    settings = Settings.from_env({})
    assert settings.kube_mode == "auto"
    assert settings.flap_cycles == 3
    assert settings.slack_api_url == "https://slack.com/api/"


@pytest.mark.parametrize("missing", sorted(SERVE_ENV))
def test_serve_names_the_missing_variable(missing: str) -> None:
    env = {k: v for k, v in SERVE_ENV.items() if k != missing}
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env, for_serve=True)
    assert info.value.variable == missing
    assert "\n" not in str(info.value)


def test_socket_mode_replaces_signing_secret() -> None:
    env = {**SERVE_ENV, "SLACK_APP_TOKEN": "xapp-1"}
    del env["SLACK_SIGNING_SECRET"]
    assert Settings.from_env(env, for_serve=True).socket_mode


def test_routes_first_match_wins() -> None:
    settings = Settings.from_env(
        {
            **SERVE_ENV,
            "INCIDENT_BOT_CHANNEL_ROUTES": "team=data:#data; namespace=shop:#shop;namespace=x:#x",
        }
    )
    assert settings.routes[0] == Route("team", "data", "#data")
    assert settings.channel_for({"namespace": "shop", "team": "data"}) == "#data"
    assert settings.channel_for({"namespace": "shop"}) == "#shop"
    assert settings.channel_for({"namespace": "other"}) == "#incidents"


@pytest.mark.parametrize("bad", ["namespace:#x", "=a:#x", "a=b", "a=b:"])
def test_bad_route_is_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError, match="INCIDENT_BOT_CHANNEL_ROUTES"):
        parse_routes(bad)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("INCIDENT_BOT_PORT", "http"),
        ("INCIDENT_BOT_PORT", "70000"),
        ("INCIDENT_BOT_KUBE_TIMEOUT", "soon"),
        ("INCIDENT_BOT_KUBE_MODE", "magic"),
        ("INCIDENT_BOT_LOG_LEVEL", "LOUD"),
        ("INCIDENT_BOT_FLAP_CYCLES", "1"),
    ],
)
def test_invalid_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({name: value})
    assert info.value.variable == name


def test_url_mode_needs_url() -> None:
    with pytest.raises(ConfigError, match="INCIDENT_BOT_KUBE_URL"):
        Settings.from_env({"INCIDENT_BOT_KUBE_MODE": "url"})


def test_api_url_gets_trailing_slash() -> None:
    settings = Settings.from_env({"SLACK_API_URL": "http://127.0.0.1:9/api"})
    assert settings.slack_api_url == "http://127.0.0.1:9/api/"


def test_readme_table_lists_every_variable() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    listed = set(re.findall(r"^\| `([A-Z_]+)` \|", readme, flags=re.M))
    assert listed == set(SETTINGS_DOC)
