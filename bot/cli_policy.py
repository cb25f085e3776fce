"""``incident-bot policy``: judge one kubectl command (CONTRACTS §4) and show the active rules.

Registered in :mod:`bot.cli` with ``main.add_command(policy)``. The policy engine and the
kubectl parser are imported inside the commands, so ``incident-bot --help`` stays fast.
Exit codes of ``check``: 0 allowed, 1 denied or needs_review, 2 usage errors (no command,
an unreadable or invalid policy file, a bad option value) — one line on stderr.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

if TYPE_CHECKING:
    from policies.engine import Judgement, Policy

_POLICY_HELP = (
    "A policy file (.yaml/.yml/.json); repeat to layer files in order. "
    "'default' names the packaged default, which is used when none is given."
)


def _usage(message: str) -> NoReturn:
    click.echo(f"incident-bot: {message}", err=True)
    sys.exit(2)


def _load(files: Sequence[str]) -> Policy:
    from policies.engine import PolicyError, load_policy

    try:
        return load_policy([Path(f) for f in files] or None)
    except PolicyError as exc:
        _usage(f"bad policy: {exc}")


def _labels(pairs: Sequence[str]) -> dict[str, str]:
    labels = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            _usage(f"--label wants KEY=VALUE, got {pair!r}")
        labels[key] = value
    return labels


def _when(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        _usage(f"--at wants an RFC 3339 time, got {text!r}")
    if moment.tzinfo is None:
        _usage(f"--at needs a UTC offset, got {text!r}")
    return moment


def _print(judgement: Judgement) -> None:
    click.echo(f"{judgement.verdict} (risk {judgement.risk})")
    for reason in judgement.reasons:
        click.echo(f"  - {reason}")
    if judgement.action is not None:
        click.echo(f"action:   {judgement.action.kubectl}")
        click.echo(f"rollback: {judgement.action.rollback or '(none)'}")
        if judgement.verdict != "denied":
            who = ", ".join(judgement.approvers) or "(no approvers configured)"
            click.echo(f"approval: {judgement.approvals_required} of {who}")


@click.group()
def policy() -> None:
    """Judge kubectl commands against the remediation policy."""


@policy.command()
@click.option("--policy", "policy_files", multiple=True, metavar="FILE", help=_POLICY_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the contract's JSON object.")
@click.option(
    "--label",
    "label_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="An incident label (for label overrides and production detection); repeatable.",
)
@click.option("--at", "at", metavar="RFC3339", help="Judge as of this time (change freezes).")
@click.argument("command", nargs=-1)
def check(
    policy_files: tuple[str, ...],
    as_json: bool,
    label_pairs: tuple[str, ...],
    at: str | None,
    command: tuple[str, ...],
) -> None:
    """Judge one kubectl command: incident-bot policy check -- kubectl scale …

    The command is one quoted string or separate words after ``--``. Exit 0 when allowed,
    1 when denied or needing review, 2 on usage errors.
    """
    if not command or not " ".join(command).strip():
        _usage("usage: policy check [--policy FILE] [--json] -- <kubectl command …>")
    labels = _labels(label_pairs)
    now = _when(at)
    loaded = _load(policy_files)
    from policies.engine import judge
    from policies.kubectl import parse_kubectl

    parsed = parse_kubectl(command[0] if len(command) == 1 else list(command))
    judgement = judge(parsed, loaded, labels=labels, now=now)
    if as_json:
        click.echo(json.dumps(judgement.to_dict(), ensure_ascii=False))
    else:
        _print(judgement)
    sys.exit(0 if judgement.allowed else 1)


@policy.command()
@click.option("--policy", "policy_files", multiple=True, metavar="FILE", help=_POLICY_HELP)
@click.option("--namespace", help="Show the rules in effect for this namespace.")
@click.option("--label", "label_pairs", multiple=True, metavar="KEY=VALUE", help="Incident label.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of YAML.")
def show(
    policy_files: tuple[str, ...],
    namespace: str | None,
    label_pairs: tuple[str, ...],
    as_json: bool,
) -> None:
    """Print the effective rules (all files and matching overrides applied)."""
    labels = _labels(label_pairs)
    loaded = _load(policy_files)
    rules = loaded.rules_for(namespace, labels).to_dict()
    if as_json:
        click.echo(json.dumps({"sources": list(loaded.sources), "rules": rules}))
        return
    import yaml

    click.echo(f"# sources: {', '.join(loaded.sources)}")
    if namespace or labels:
        scope = [f"namespace {namespace}"] if namespace else []
        scope += [f"{k}={v}" for k, v in labels.items()]
        click.echo(f"# effective for: {', '.join(scope)}")
    click.echo(yaml.safe_dump(rules, sort_keys=False, allow_unicode=True).rstrip())
