"""The ``incident-bot`` command line.

Heavy imports (aiohttp app, kubernetes, slack_sdk, torch later) happen inside commands, so
``--help`` stays fast.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from bot.cli_audit import audit
from bot.cli_history import history, reindex, similar, stats
from bot.cli_policy import policy
from bot.config import Settings
from bot.errors import ConfigError, PayloadError


def _settings(*, for_serve: bool = False, data_dir: str | None = None) -> Settings:
    env = dict(os.environ)
    if data_dir:
        env["INCIDENT_BOT_DATA_DIR"] = data_dir
    try:
        return Settings.from_env(env, for_serve=for_serve)
    except ConfigError as exc:
        # One clear line, no traceback: this is what an operator sees in the pod log.
        click.echo(f"incident-bot: configuration error: {exc}", err=True)
        sys.exit(2)


def _logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@click.group()
@click.version_option(package_name="incident-bot")
def main() -> None:
    """incident-bot: Alertmanager → incidents → Slack threads, with evidence."""


@main.command()
@click.option("--data-dir", default=None, help="Overrides INCIDENT_BOT_DATA_DIR.")
def serve(data_dir: str | None) -> None:
    """Run the bot: HTTP server, inbox worker and Slack outbox."""
    settings = _settings(for_serve=True, data_dir=data_dir)
    _logging(settings.log_level)
    from handlers.server import serve as run_server

    try:
        asyncio.run(run_server(settings))
    except KeyboardInterrupt:
        pass
    except ConfigError as exc:
        click.echo(f"incident-bot: configuration error: {exc}", err=True)
        sys.exit(2)


@main.command()
@click.option(
    "--scenario",
    "scenario_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A scenario file (CONTRACTS.md §1): its cluster is served on loopback.",
)
@click.option(
    "--alert",
    "alert_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="An Alertmanager webhook body (JSON) investigated against the live cluster.",
)
@click.option("--namespace", help="With --object: investigate this object in the live cluster.")
@click.option("--object", "object_ref", help="Kind/name, e.g. Deployment/cart (with --namespace).")
@click.option("--json", "as_json", is_flag=True, help="Print the contract's JSON object.")
def investigate(
    scenario_path: Path | None,
    alert_path: Path | None,
    namespace: str | None,
    object_ref: str | None,
    as_json: bool,
) -> None:
    """Investigate a frozen scenario, a webhook, or an object in the live cluster.

    The live forms use the cluster access of the environment (INCIDENT_BOT_KUBE_MODE,
    KUBECONFIG, INCIDENT_BOT_KUBE_CONTEXT) and INCIDENT_BOT_PROMETHEUS_URL.
    """
    forms = [scenario_path is not None, alert_path is not None, object_ref is not None]
    if sum(forms) != 1 or (object_ref is not None and not namespace):
        click.echo(
            "incident-bot: usage: investigate --scenario FILE | --alert WEBHOOK.json | "
            "--namespace NS --object Kind/name",
            err=True,
        )
        sys.exit(2)
    settings = _settings()
    _logging("WARNING")
    from bot.investigate import investigate_alert, investigate_object, investigate_scenario
    from sandbox.scenario import ScenarioError, load_scenario

    try:
        if scenario_path is not None:
            scenario = load_scenario(scenario_path)
            result = asyncio.run(investigate_scenario(scenario, settings))
        elif alert_path is not None:
            body = _read_file(alert_path)
            result = asyncio.run(investigate_alert(body, settings))
        else:
            assert namespace is not None and object_ref is not None
            result = asyncio.run(investigate_object(namespace, object_ref, settings))
    except ScenarioError as exc:
        click.echo(f"incident-bot: bad scenario: {exc}", err=True)
        sys.exit(2)
    except PayloadError as exc:
        source = scenario_path or alert_path
        prefix = "webhook." if scenario_path is not None else ""
        click.echo(f"incident-bot: bad input: {source}: {prefix}{exc}", err=True)
        sys.exit(2)
    except (ConfigError, ValueError) as exc:
        click.echo(f"incident-bot: {exc}", err=True)
        sys.exit(2)
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False))
    else:
        _print_report(result)


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        click.echo(f"incident-bot: cannot read {path}: {exc.strerror}", err=True)
        sys.exit(2)


def _print_report(result: dict[str, Any]) -> None:
    from rich.console import Console

    console = Console()
    incident = result["incident"]
    console.print(
        f"[bold]{incident['alertname']}[/] {incident['object'] or incident['namespace']}"
        f" ({incident['severity']})",
        highlight=False,
    )
    console.print(
        f"[bold]{result['category']}[/] ({result['confidence']:.0%}, {result['analyzer']}): "
        f"{result['summary']}",
        highlight=False,
    )
    console.print(result["root_cause"], highlight=False)
    if result.get("trigger"):
        console.print(f"trigger: {result['trigger']}", highlight=False)
    for item in result["evidence"]:
        console.print(f"  • [cyan]{item['ref']}[/] {item['text']}", highlight=False)
    for action in result["actions"]:
        console.print(f"  → {action['kubectl']}", highlight=False)
    for line in result["missing_data"]:
        console.print(f"  [yellow]missing:[/] {line}", highlight=False)


@main.command()
@click.option(
    "--scenarios",
    "scenario_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("scenarios"),
    show_default=True,
    help="Directory of scenario files whose webhooks the demo fires.",
)
@click.option("--port", default=8080, show_default=True, help="Port of the bot (0 = any).")
@click.option("--once", is_flag=True, help="Exit after printing the threads.")
@click.option(
    "--web-port",
    type=int,
    default=None,
    help="Port of the sandbox Slack page (default 8090; any free port with --once or --port 0).",
)
def demo(scenario_dir: Path, port: int, once: bool, web_port: int | None) -> None:
    """Run the bot against the sandbox and fire every scenario's alert."""
    from bot.demo import run_demo

    _logging("WARNING")
    try:
        asyncio.run(run_demo(scenario_dir, port=port, once=once, web_port=web_port))
    except KeyboardInterrupt:
        pass


main.add_command(policy)
main.add_command(history)
main.add_command(similar)
main.add_command(reindex)
main.add_command(stats)
main.add_command(audit)


if __name__ == "__main__":  # pragma: no cover
    main()
