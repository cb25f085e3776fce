"""``manifest.yml`` is a valid Slack app manifest and points every request at ``/slack/events``.

The schema (``deploy/slack-manifest.schema.json``) is written from Slack's manifest reference;
the negative cases below show it refuses the mistakes Slack would refuse at "Create New App".
Scopes against the Web API methods called are checked in tests/test_deploy.py.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from jsonschema import Draft202012Validator

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_PATH = ROOT / "deploy" / "slack-manifest.schema.json"
EVENTS_PATH = "/slack/events"


def load_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return schema


def load_manifest() -> dict[str, Any]:
    manifest: dict[str, Any] = yaml.safe_load((ROOT / "manifest.yml").read_text(encoding="utf-8"))
    return manifest


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = load_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def problems(validator: Draft202012Validator, manifest: dict[str, Any]) -> list[str]:
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(top)'}: {error.message}"
        for error in sorted(validator.iter_errors(manifest), key=lambda e: list(e.absolute_path))
    ]


def test_manifest_matches_the_schema(validator: Draft202012Validator) -> None:
    assert problems(validator, load_manifest()) == []


def test_every_slash_command_is_complete_and_served_by_the_bot() -> None:
    commands = load_manifest()["features"]["slash_commands"]
    assert commands
    for command in commands:
        name = command["command"]
        assert command.get("description", "").strip(), f"{name} has no description"
        assert command.get("usage_hint", "").strip(), f"{name} has no usage_hint"
        assert urlsplit(command["url"]).path == EVENTS_PATH, f"{name} url: {command['url']}"


def test_interactivity_and_events_post_to_slack_events() -> None:
    settings = load_manifest()["settings"]
    assert settings["interactivity"]["is_enabled"] is True
    assert urlsplit(settings["interactivity"]["request_url"]).path == EVENTS_PATH
    events = settings.get("event_subscriptions")
    if events is not None:
        assert urlsplit(events["request_url"]).path == EVENTS_PATH


def test_every_request_url_names_one_https_host() -> None:
    manifest = load_manifest()
    urls = [c["url"] for c in manifest["features"].get("slash_commands", [])]
    urls.append(manifest["settings"]["interactivity"]["request_url"])
    if "event_subscriptions" in manifest["settings"]:
        urls.append(manifest["settings"]["event_subscriptions"]["request_url"])
    parts = [urlsplit(url) for url in urls]
    assert {p.scheme for p in parts} == {"https"}
    assert len({p.netloc for p in parts}) == 1, urls


def _parent(manifest: dict[str, Any], path: str) -> tuple[Any, str]:
    """The container of the dotted ``path`` (list indexes as numbers) and the last key."""
    *parents, last = path.split(".")
    node: Any = manifest
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    return node, last


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(manifest: dict[str, Any]) -> None:
        node, last = _parent(manifest, path)
        node[int(last) if isinstance(node, list) else last] = value

    return apply


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    def apply(manifest: dict[str, Any]) -> None:
        node, last = _parent(manifest, path)
        del node[last]

    return apply


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (_set("features.slash_commands.0.command", "policy"), "features/slash_commands/0/command"),
        (_set("features.slash_commands.0.command", "/" + "x" * 32), "features/slash_commands/0"),
        (_set("features.slash_commands.0.url", "ftp://bot/slack/events"), "slash_commands/0/url"),
        (_delete("features.slash_commands.0.description"), "features/slash_commands/0"),
        (_set("features.slash_commands.0.usage_hint", ""), "slash_commands/0/usage_hint"),
        (_set("features.slash_commands.0.shouldEscape", False), "features/slash_commands/0"),
        (_set("display_information.description", "x" * 141), "display_information/description"),
        (_set("display_information.background_color", "blue"), "background_color"),
        (_delete("display_information.name"), "display_information"),
        (_set("display_information.name", "x" * 36), "display_information/name"),
        (_delete("settings.interactivity.is_enabled"), "settings/interactivity"),
        (_set("settings.interactivty", {"is_enabled": True}), "settings"),
        (_set("settings.socket_mode_enabled", "false"), "settings/socket_mode_enabled"),
        (_set("oauth_config.scopes.bots", ["chat:write"]), "oauth_config/scopes"),
        (_set("oauth_config.scopes.bot", ["chat:write", "chat:write"]), "oauth_config/scopes/bot"),
        (_set("_metadata.major_version", 3), "_metadata/major_version"),
        (_set("feature", {}), "(top)"),
        (_delete("display_information"), "(top)"),
    ],
)
def test_schema_refuses_broken_manifests(
    validator: Draft202012Validator, change: Callable[[dict[str, Any]], None], where: str
) -> None:
    manifest = copy.deepcopy(load_manifest())
    change(manifest)
    found = problems(validator, manifest)
    assert found, "the schema accepted a broken manifest"
    assert any(where in problem for problem in found), found


def test_schema_accepts_the_documented_optional_sections(validator: Draft202012Validator) -> None:
    manifest = copy.deepcopy(load_manifest())
    manifest["features"]["app_home"] = {"home_tab_enabled": True, "messages_tab_enabled": False}
    manifest["features"]["shortcuts"] = [
        {"name": "Open incident", "type": "message", "callback_id": "open", "description": "d"}
    ]
    manifest["settings"]["event_subscriptions"] = {
        "request_url": "https://incident-bot.example.com/slack/events",
        "bot_events": ["app_home_opened", "app_mention"],
    }
    manifest["settings"]["allowed_ip_address_ranges"] = ["10.0.0.0/8", "192.168.1.7"]
    manifest["display_information"]["long_description"] = "An incident bot. " * 11
    manifest["features"]["slash_commands"][0].pop("url")  # Socket Mode apps have none
    assert problems(validator, manifest) == []
