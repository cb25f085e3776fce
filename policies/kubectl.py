"""One kubectl command line → a catalogue action, a read-only verdict, or a refusal.

``parse_kubectl`` is the only door through which a command typed by a person, proposed by
the LLM or given to ``incident-bot policy check`` becomes something the bot could run. It
never raises for bad input and it fails closed: whatever it cannot fully understand is
refused with a reason, never guessed at.

Rules, in the order they are applied:

1. **One command, no shell.** A string is scanned quote-aware first: outside quotes, the
   shell operators and expansions ``| ; & > < ` $ \\ ( ) { } [ ] * ? ~ #`` are refused
   (pipes, lists, background, redirection, substitution, escapes and line continuations,
   subshells, brace/glob/tilde expansion, comments); inside double quotes ``$``, backticks
   and backslashes other than ``\\"``/``\\\\`` are refused (the shell would expand them);
   single quotes are literal. Then it is split with ``shlex`` (POSIX); unbalanced quotes are
   refused. Every token (from a string or an argv list) must be printable ASCII — this
   refuses look-alike dashes such as ``—as`` — and must not hold ``| ; & > < ` $`` even
   when quoted. Newlines and other control characters are refused anywhere.
2. **kubectl itself.** The first token must be exactly ``kubectl`` (or ``helm``, below).
   Environment prefixes (``KUBECONFIG=/x kubectl``), wrappers (``sudo``, ``env``,
   ``watch``) and paths (``/usr/bin/kubectl``) are refused.
3. **Flags as kubectl's pflag reads them**: ``--flag=v``, ``--flag v``, ``-n=v``, ``-nv``,
   bundled shorthands (``-it``); ``_`` in a long name is read as ``-`` (kubectl's
   word-separator normalisation), so ``--as_group`` is ``--as-group``. Credential and
   cluster-target flags (``--as``, ``--as-group``, ``--as-uid``, ``--token``, ``--server``/
   ``-s``, ``--kubeconfig``, ``--context``, ``--cluster``, ``--user``, ``--username``,
   ``--password``, ``--certificate-authority``, ``--client-certificate``, ``--client-key``,
   ``--insecure-skip-tls-verify``, ``--tls-server-name``) and file-writing ones
   (``--cache-dir``, ``--log-file``, ``--log-dir``, ``--profile-output``) are refused on every
   verb, in any case, and wherever the spelling stands — even as another flag's value or
   after ``--`` — so no reader can take it for a flag. ``--filename``/``-f``,
   ``--kustomize``/``-k`` (files and URLs) and ``--raw`` are refused on every verb too.
   Only the global flags ``-n``/``--namespace``, ``--request-timeout`` and ``-v`` may come
   before the verb.
4. **Read-only verbs** — get, describe, logs, top, events, explain, api-resources,
   api-versions, version, cluster-info (not ``dump``), rollout status/history, auth
   can-i/whoami — are accepted with their read flags (``-A``, ``-l``, ``-o`` …) except that
   ``get`` of secrets with an output format that prints values (``-o yaml/json/jsonpath``,
   ``--template``) is refused: secret values must not reach Slack or an LLM. So are
   ``-o *-file=PATH`` formats (they read local files) and ``-v`` above 6 (from 8 kubectl
   prints response bodies). Verbs are case-sensitive, as in kubectl; type names are not.
5. **Mutating verbs** map to exactly one catalogue action through
   :func:`bot.rca.actions.build_action`, which validates names, quantities and bounds and
   renders the canonical command. Each mutating verb accepts only the flags its action
   carries (plus ``-n``, ``--request-timeout``, ``-v``, ``-o``, ``--field-manager``); any
   other flag is refused because the action would silently drop it. In particular
   ``--all``, ``-A``, ``-l``/``--selector``, ``--field-selector``, ``--force``,
   ``--grace-period``, ``--now``, ``--cascade`` and ``--dry-run`` are refused: one named
   object only, graceful semantics only, and the executor always runs its own server-side
   dry-run (so a ``--dry-run`` command is neither an action nor read-only — refused).
   ``TYPE NAME`` and ``TYPE/NAME`` forms are accepted, with plural, short and
   group-qualified type names (``deploy``, ``deployments.apps``, ``sts``, ``cj``, ``hpa`` …),
   case-insensitive. A type without a name (``rollout restart deploy``, which restarts
   every Deployment) is refused.
6. **Patches** are accepted only in two exact shapes, as merge or strategic patches:
   ``{"spec":{"suspend":true|false}}`` on a CronJob (suspend/resume) and
   ``{"spec":{"maxReplicas":N}}`` on a HorizontalPodAutoscaler (``scale`` on the HPA).
   Duplicate keys, floats, ``1`` for ``true`` and any other field are refused.
7. **Namespace.** A namespaced action without ``-n`` targets ``default`` (as kubectl does),
   while :attr:`Parsed.namespace` stays ``None`` so the policy engine can flag the omission.
   Conflicting ``-n`` values are refused.
8. **helm**: only ``helm rollback RELEASE [REVISION] [-n NS]`` is accepted, as
   ``helm_rollback``. Its target is ``<ns>/Deployment/<release>`` by convention (charts
   usually name their main Deployment after the release); the catalogue needs a workload
   target and the policy engine judges namespace and name from it. Every other helm flag
   (``--kube-context``, ``--kubeconfig``, ``--force``, ``--no-hooks`` …) is refused.

``rollout undo --to-revision=0`` means "the previous revision" to kubectl, so it is parsed
as an undo without a revision.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.rca.actions import build_action
from bot.rca.model import Action
from policies.kubectl_shell import MAX_COMMAND_LENGTH as MAX_COMMAND_LENGTH
from policies.kubectl_shell import _tokenize
from policies.kubectl_tables import (
    _CREDENTIAL_FLAGS,
    _DIGITS,
    _DNS_LABEL,
    _DNS_SUBDOMAIN,
    _ENV_ASSIGNMENT,
    _FILE_WRITING_FLAGS,
    _FLAG_REASONS,
    _GLOBAL_OK,
    _GLOBAL_SHORT,
    _GROUPS,
    _INPUT_FLAGS,
    _MAX_VERBOSITY,
    _MUTATION_OK,
    _READ_ONLY,
    _REFUSED_VERBS,
    _SECRET_SAFE_OUTPUT,
    _SHORT,
    _TYPES,
    _VALUE_FLAGS,
    _WRAPPERS,
)


@dataclass(frozen=True)
class Parsed:
    """What one command line means to the bot.

    Attributes:
        command: The input as given (an argv list is joined with ``shlex.join``).
        verb: ``"scale"``, ``"rollout undo"``, ``"get"`` …; ``""`` when unknown.
        namespace: From ``-n``/``--namespace``; ``None`` when not given (kubectl then uses
            ``default``, and so does the action's target).
        read_only: The command only reads.
        action: The catalogue action a mutating command maps to.
        refusal: Why the command is refused (then ``action`` is None and ``read_only``
            False).
    """

    command: str
    verb: str
    namespace: str | None
    read_only: bool
    action: Action | None
    refusal: str | None

    @property
    def accepted(self) -> bool:
        """True for a read-only command or one that maps to a catalogue action."""
        return self.action is not None or self.read_only


class _Refused(Exception):
    """Parsing stopped: the command is refused for ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Args:
    """A command's tokens after the program name, split into flags and positionals."""

    verb: str = ""
    flags: list[tuple[str, str | None, str]] = field(default_factory=list)  # name, value, as typed
    positionals: list[str] = field(default_factory=list)

    def values(self, name: str) -> list[str | None]:
        return [value for flag, value, _ in self.flags if flag == name]

    def value(self, name: str) -> str | None:
        found = self.values(name)
        if len(set(found)) > 1:
            raise _Refused(f"--{name} given more than once with different values")
        return found[-1] if found else None


def parse_kubectl(command: str | Sequence[str]) -> Parsed:
    """Parse one kubectl (or ``helm rollback``) command; never raises for bad input.

    Args:
        command: A command line as typed, or an argv list (not passed through a shell).

    Returns:
        The parse: a catalogue action, a read-only classification, or a refusal with its
        reason. See the module docstring for the rules.
    """
    text, tokens, refusal = _tokenize(command)
    if refusal is not None:
        return Parsed(text, "", None, False, None, refusal)
    args = _Args()
    namespace: str | None = None
    try:
        if tokens[0] == "helm":
            _no_credential_tokens(tokens[1:])
            _helm_args(tokens[1:], args)
            namespace = _namespace(args)
            return Parsed(text, args.verb, namespace, False, _helm_rollback(args, namespace), None)
        _check_program(tokens[0])
        _no_credential_tokens(tokens[1:])
        _kubectl_args(tokens[1:], args)
        namespace = _namespace(args)
        if args.verb in _READ_ONLY:
            _check_read(args)
            return Parsed(text, args.verb, namespace, True, None, None)
        action = _MUTATIONS[args.verb](args, namespace or "default")
        return Parsed(text, args.verb, namespace, False, action, None)
    except _Refused as exc:
        return Parsed(text, args.verb, namespace, False, None, exc.reason)
    except Exception as exc:  # noqa: BLE001 — fail closed: a parser bug must refuse, not pass
        return Parsed(text, args.verb, namespace, False, None, f"internal parser error: {exc!r}")


def _check_program(program: str) -> None:
    if program == "kubectl":
        return
    if _ENV_ASSIGNMENT.match(program):
        raise _Refused(f"environment assignment before the command ({program.split('=')[0]})")
    if program in _WRAPPERS:
        raise _Refused(f"kubectl wrapped in {program!r} is not allowed; give kubectl alone")
    if program.endswith("/kubectl"):
        raise _Refused("call kubectl by name, not by path")
    raise _Refused(f"not a kubectl command: {program[:40]!r}")


def _long_name(token: str) -> tuple[str, str | None]:
    """``--as_group=x`` → ``("as-group", "x")`` (kubectl normalises ``_`` to ``-``)."""
    name, eq, value = token[2:].partition("=")
    return name.replace("_", "-"), (value if eq else None)


def _refuse_always(name: str, spelling: str, *, inputs: bool = True) -> None:
    """Refuse credential, file-writing and (with ``inputs``) file/URL/raw-path flags."""
    if name.lower() in _CREDENTIAL_FLAGS:
        raise _Refused(
            f"credential or cluster-target flag {spelling!r} is not allowed "
            "(the bot's own identity and cluster are used)"
        )
    if name.lower() in _FILE_WRITING_FLAGS:
        raise _Refused(f"flag {spelling!r} writes local files")
    if inputs and name in _INPUT_FLAGS:
        raise _Refused(
            f"flag {spelling!r} is not allowed: manifests from files or URLs and raw API "
            "paths are not accepted; name the object"
        )


def _no_credential_tokens(tokens: list[str]) -> None:
    """Refuse credential flags wherever they stand, even where kubectl would read a value.

    A flag kubectl reads with an optional value (``--cascade``) or a token after ``--`` can
    make the same text mean a flag to one reader and a value to another; refusing the
    spelling anywhere removes the question.
    """
    for token in tokens:
        if token.startswith("--"):
            _refuse_always(_long_name(token)[0], token, inputs=False)
        elif token.startswith("-s"):
            _refuse_always("server", token)


def _parse_flags(
    tokens: list[str],
    short: Mapping[str, str],
    args: _Args,
    *,
    stop_at_positional: bool = False,
) -> int:
    """Read flags (pflag rules) and positionals into ``args``; return tokens consumed."""
    flags, positionals = args.flags, args.positionals
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if token == "--":
            if stop_at_positional:
                raise _Refused("'--' before the verb")
            positionals.extend(tokens[index:])
            return len(tokens)
        if token.startswith("--"):
            name, value = _long_name(token)
            if not name:
                raise _Refused(f"malformed flag {token!r}")
            _refuse_always(name, token)
            if value is None and name in _VALUE_FLAGS:
                if index >= len(tokens):
                    raise _Refused(f"flag {token!r} needs a value")
                value = tokens[index]
                index += 1
            flags.append((name, value, token))
        elif token.startswith("-") and token != "-":
            index = _parse_short(token, tokens, index, short, flags)
        elif stop_at_positional:
            return index - 1
        else:
            positionals.append(token)
    return index


def _parse_short(
    token: str,
    tokens: list[str],
    index: int,
    short: Mapping[str, str],
    flags: list[tuple[str, str | None, str]],
) -> int:
    """Read one ``-abc``/``-nvalue``/``-n=value`` cluster; return the next token index."""
    body = token[1:]
    position = 0
    while position < len(body):
        char = body[position]
        name = short.get(char)
        if name is None:
            raise _Refused(f"unknown or unsupported flag -{char} in {token!r}")
        _refuse_always(name, f"-{char}")
        rest = body[position + 1 :]
        if name in _VALUE_FLAGS:
            if rest.startswith("="):
                flags.append((name, rest[1:], token))
            elif rest:
                flags.append((name, rest, token))
            elif index < len(tokens):
                flags.append((name, tokens[index], token))
                index += 1
            else:
                raise _Refused(f"flag -{char} needs a value")
            return index
        if rest.startswith("="):
            flags.append((name, rest[1:], token))
            return index
        flags.append((name, None, token))
        position += 1
    return index


def _kubectl_args(tokens: list[str], args: _Args) -> None:
    """Find the verb (after any global flags) and read the rest with its flag table."""
    start = _parse_flags(tokens, _GLOBAL_SHORT, args, stop_at_positional=True)
    for name, _, spelling in args.flags:
        if name not in _GLOBAL_OK:
            raise _Refused(f"only global flags may come before the verb, not {spelling!r}")
    if start >= len(tokens):
        raise _Refused("no verb given")
    word = tokens[start]
    group = word if word in _SHORT or word in _REFUSED_VERBS else ""  # verbs are case-sensitive
    if not group:
        raise _Refused(f"unknown or unsupported verb {word[:40]!r}")
    args.verb = "" if group in _GROUPS else group
    if group in _REFUSED_VERBS:
        raise _Refused(f"kubectl {group} {_REFUSED_VERBS[group]}")
    _parse_flags(tokens[start + 1 :], {**_GLOBAL_SHORT, **_SHORT[group]}, args)
    positionals = args.positionals
    if group in _GROUPS:
        if not positionals or positionals[0] not in _GROUPS[group]:
            what = positionals[0][:40] if positionals else "nothing"
            raise _Refused(f"unknown or unsupported verb: kubectl {group} {what!r}")
        args.verb = f"{group} {positionals.pop(0)}"
    if args.verb == "cluster-info" and positionals[:1] == ["dump"]:
        args.verb = "cluster-info dump"
    if args.verb in _REFUSED_VERBS:
        raise _Refused(f"kubectl {args.verb} {_REFUSED_VERBS[args.verb]}")
    if args.verb not in _READ_ONLY:
        allowed = _MUTATION_OK | _MUTATION_FLAGS.get(args.verb, frozenset())
        for name, _, spelling in args.flags:
            if name not in allowed:
                raise _Refused(
                    _FLAG_REASONS.get(name)
                    or f"flag {spelling!r} is not supported for kubectl {args.verb} "
                    "(the catalogue action would not carry it)"
                )


def _helm_args(tokens: list[str], args: _Args) -> None:
    _parse_flags(tokens, {"n": "namespace"}, args)
    positionals = args.positionals
    if not positionals or positionals[0] != "rollback":
        raise _Refused("only 'helm rollback RELEASE [REVISION] -n NAMESPACE' is accepted")
    args.verb = "helm rollback"
    positionals.pop(0)
    for name, _, spelling in args.flags:
        if name != "namespace":
            raise _Refused(f"flag {spelling!r} is not supported for helm rollback")


def _namespace(args: _Args) -> str | None:
    """The ``-n`` value (validated); also bounds ``-v``, which at 8+ prints response bodies."""
    verbosity = args.value("v")
    if verbosity is not None and not (verbosity.isdigit() and int(verbosity) <= _MAX_VERBOSITY):
        raise _Refused(f"-v above {_MAX_VERBOSITY} prints request and response bodies")
    value = args.value("namespace")
    if value is not None and not _DNS_LABEL.match(value):
        raise _Refused(f"bad namespace {value[:64]!r}")
    return value


def _check_read(args: _Args) -> None:
    """Refuse read-only commands that would print local files or secret values."""
    output = (args.value("output") or "").lower()
    if "-file" in output.partition("=")[0]:
        raise _Refused(f"output format {output[:40]!r} reads a local file")
    if args.verb != "get":
        return
    if output in _SECRET_SAFE_OUTPUT and args.value("template") is None:
        return
    for positional in args.positionals:
        for kind_name in positional.split("/", 1)[0].split(","):
            kind = _TYPES.get(kind_name.lower().split(".", 1)[0])
            if kind is not None and kind[0] == "Secret":
                raise _Refused("printing secret values is not allowed (use describe)")


# --- mutating verbs -------------------------------------------------------------------------

_Mutation = Callable[[_Args, str], Action]


def _kind(type_name: str) -> str:
    resource, _, group = type_name.lower().partition(".")
    known = _TYPES.get(resource)
    if known is None or (group and group not in known[1]):
        raise _Refused(f"unsupported resource type {type_name[:40]!r}")
    return known[0]


def _one_object(positionals: list[str], *, default_kind: str = "") -> tuple[str, str]:
    """Exactly one ``TYPE/NAME`` or ``TYPE NAME`` (or bare ``NAME`` with a default type)."""
    if default_kind and len(positionals) > 1:
        raise _Refused("exactly one object, please (several were named)")
    if len(positionals) == 1 and "/" in positionals[0]:
        type_name, _, name = positionals[0].partition("/")
    elif len(positionals) == 2 and "/" not in positionals[0]:
        type_name, name = positionals
    elif len(positionals) == 1 and default_kind:
        type_name, name = default_kind, positionals[0]
    elif len(positionals) == 1:
        raise _Refused(
            f"{positionals[0][:40]!r} names no object: give TYPE/NAME "
            "(a type alone would act on every object of that type)"
        )
    elif not positionals:
        raise _Refused("no object named")
    else:
        raise _Refused("exactly one object, please (several were named)")
    if "," in type_name:
        raise _Refused("exactly one object type, please")
    kind = _kind(type_name)
    if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        raise _Refused(f"bad object name {name[:64]!r}")
    return kind, name


def _target(kind: str, name: str, namespace: str) -> str:
    return f"Node/{name}" if kind == "Node" else f"{namespace}/{kind}/{name}"


def _build(kind: str, target: str, params: dict[str, Any] | None = None) -> Action:
    try:
        return build_action(kind, target, params)
    except ValueError as exc:
        raise _Refused(f"not a valid {kind} action: {exc}") from None


def _number(value: str | None, flag: str) -> int:
    if value is None or not _DIGITS.match(value):
        raise _Refused(f"{flag} needs a whole number, not {str(value)[:20]!r}")
    return int(value)


def _rollout(kind: str) -> _Mutation:
    def parse(args: _Args, namespace: str) -> Action:
        object_kind, name = _one_object(args.positionals)
        params: dict[str, Any] = {}
        revision = args.value("to-revision")
        if revision is not None and _number(revision, "--to-revision"):
            params["to_revision"] = int(revision)  # 0 means "previous", as if not given
        return _build(kind, _target(object_kind, name, namespace), params)

    return parse


def _scale(args: _Args, namespace: str) -> Action:
    kind, name = _one_object(args.positionals)
    replicas = _number(args.value("replicas"), "--replicas")
    return _build("scale", _target(kind, name, namespace), {"replicas": replicas})


def _pairs(value: str | None, flag: str) -> dict[str, str]:
    """``cpu=1,memory=512Mi`` → a mapping; repeated keys are refused."""
    out: dict[str, str] = {}
    for item in (value or "").split(","):
        key, eq, quantity = item.partition("=")
        if not eq or not key or key in out:
            raise _Refused(f"{flag}: expected NAME=QUANTITY pairs, got {item[:40]!r}")
        out[key] = quantity
    return out


def _set_resources(args: _Args, namespace: str) -> Action:
    kind, name = _one_object(args.positionals)
    params: dict[str, Any] = {"container": args.value("container") or ""}
    for flag in ("limits", "requests"):
        value = args.value(flag)
        if value is not None:
            params[flag] = _pairs(value, f"--{flag}")
    if not params.get("container"):
        raise _Refused("set resources needs -c CONTAINER (one container at a time)")
    return _build("set_resources", _target(kind, name, namespace), params)


def _set_image(args: _Args, namespace: str) -> Action:
    positionals = args.positionals
    pairs = [p for p in positionals if "=" in p]
    kind, name = _one_object([p for p in positionals if "=" not in p])
    if len(pairs) != 1:
        raise _Refused("set image takes exactly one CONTAINER=IMAGE pair")
    container, _, image = pairs[0].partition("=")
    params = {"container": container, "image": image}
    return _build("set_image", _target(kind, name, namespace), params)


def _delete(args: _Args, namespace: str) -> Action:
    why = "only a single named pod may be deleted (its controller recreates it)"
    try:
        kind, name = _one_object(args.positionals)
    except _Refused as exc:
        raise _Refused(f"{why}: {exc.reason}") from None
    if kind != "Pod":
        raise _Refused(f"{why}; deleting a {kind} is not allowed")
    return _build("delete_pod", _target(kind, name, namespace))


def _node(verb: str) -> _Mutation:
    def parse(args: _Args, namespace: str) -> Action:
        kind, name = _one_object(args.positionals, default_kind="node")
        if kind != "Node":
            raise _Refused(f"{verb} applies to nodes only")
        return _build(verb, _target(kind, name, namespace))

    return parse


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(keys) != len(set(keys)):
        raise _Refused("the patch repeats a key")
    return dict(pairs)


def _patch_body(value: str) -> Any:
    def constant(name: str) -> Any:
        raise _Refused(f"the patch holds {name}")

    try:
        return json.loads(value, object_pairs_hook=_no_duplicates, parse_constant=constant)
    except ValueError:
        raise _Refused("the patch is not valid JSON") from None


def _spec_field(body: Any, key: str, kind: type) -> Any:
    """The one value of ``{"spec": {field: value}}`` when ``body`` is exactly that."""
    if (
        isinstance(body, dict)
        and list(body) == ["spec"]
        and isinstance(body["spec"], dict)
        and list(body["spec"]) == [key]
        and type(body["spec"][key]) is kind
    ):
        return body["spec"][key]
    return None


def _patch(args: _Args, namespace: str) -> Action:
    kind, name = _one_object(args.positionals)
    patch_type = args.value("type") or "strategic"
    if patch_type not in ("merge", "strategic"):
        raise _Refused(f"patch type {patch_type[:20]!r} is not accepted (merge or strategic)")
    value = args.value("patch")
    if value is None:
        raise _Refused("patch needs -p PATCH")
    body = _patch_body(value)
    target = _target(kind, name, namespace)
    if kind == "CronJob":
        suspend = _spec_field(body, "suspend", bool)
        if suspend is not None:
            return _build("suspend_cronjob" if suspend else "resume_cronjob", target)
    elif kind == "HorizontalPodAutoscaler":
        max_replicas = _spec_field(body, "maxReplicas", int)
        if max_replicas is not None:
            return _build("scale", target, {"max_replicas": max_replicas})
    raise _Refused(
        'only {"spec":{"suspend":true|false}} on a CronJob and '
        '{"spec":{"maxReplicas":N}} on a HorizontalPodAutoscaler are accepted patches'
    )


def _helm_rollback(args: _Args, namespace: str | None) -> Action:
    positionals = args.positionals
    if not 1 <= len(positionals) <= 2:
        raise _Refused("helm rollback takes RELEASE and an optional REVISION")
    release = positionals[0]
    revision = _number(positionals[1], "revision") if len(positionals) == 2 else 0
    target = _target("Deployment", release, namespace or "default")
    return _build("helm_rollback", target, {"release": release, "revision": revision})


_MUTATIONS: dict[str, _Mutation] = {
    "rollout restart": _rollout("rollout_restart"),
    "rollout undo": _rollout("rollout_undo"),
    "scale": _scale,
    "set resources": _set_resources,
    "set image": _set_image,
    "delete": _delete,
    "cordon": _node("cordon"),
    "uncordon": _node("uncordon"),
    "patch": _patch,
}
_MUTATION_FLAGS: dict[str, frozenset[str]] = {
    "rollout undo": frozenset({"to-revision"}),
    "scale": frozenset({"replicas"}),
    "set resources": frozenset({"container", "limits", "requests"}),
    "patch": frozenset({"patch", "type"}),
}
