"""The deployment artifacts agree with the code they deploy.

* ``deploy/`` renders with ``kubectl kustomize``; the reader's ClusterRole is read-only and grants
  exactly the kinds ``bot.kube.RESOURCES`` reads (plus ``pods/log``), never Secrets;
* the remediator's ClusterRole grants exactly ``REMEDIATION_PERMISSIONS``, the table the
  remediation client checks every request against, and its token is mounted where
  ``INCIDENT_BOT_REMEDIATION_TOKEN_FILE`` expects it — into a pod that runs as the reader;
* the Deployment sets only variables ``bot.config.SETTINGS_DOC`` documents;
* ``manifest.yml`` asks Slack for exactly the scopes of the Web API methods the code calls;
* the ``Dockerfile`` installs the Makefile's torch pin before the project and names no registry.

``kubectl`` missing skips the rendering tests on a developer machine and fails them under
``CI=true``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.config import SETTINGS_DOC
from bot.kube import RESOURCES
from bot.remediate.kube_write import REMEDIATION_PERMISSIONS

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
NAMESPACE = "incident-bot"
READER = "incident-bot-reader"
REMEDIATOR = "incident-bot-remediator"
READ_VERBS = {"get", "list", "watch"}

# Slack Web API method (slack_sdk spelling) → the bot scopes it needs. A method the code calls
# that is missing here fails test_manifest_scopes_match_the_methods_called: add it, and its
# scopes to manifest.yml.
METHOD_SCOPES: dict[str, set[str]] = {
    "chat_postMessage": {"chat:write"},
    "chat_update": {"chat:write"},
    # Public and private channels: the outbox's crash lookup and channel resolution read both.
    "conversations_history": {"channels:history", "groups:history"},
    "conversations_replies": {"channels:history", "groups:history"},
    "conversations_list": {"channels:read", "groups:read"},
    "chat_postEphemeral": {"chat:write"},
    "views_open": set(),  # modals need no scope, only a trigger from an interaction
    "views_publish": set(),
    "views_update": set(),
    "usergroups_list": {"usergroups:read"},  # approvers named by @handle
    "usergroups_users_list": {"usergroups:read"},
    "files_upload_v2": {"files:write"},  # metric charts
}
# Events API event (as handlers/ registers it with ``.event("…")``) → the bot scopes its
# subscription needs; manifest.yml's settings.event_subscriptions.bot_events lists them.
EVENT_SCOPES: dict[str, set[str]] = {
    "app_mention": {"app_mentions:read"},
    "app_home_opened": set(),
}
_SLACK_CALL = re.compile(
    r"(?:client|slack)\.((?:admin|apps|auth|bookmarks|calls|chat|conversations|dnd|emoji|files|pins|reactions"
    r"|reminders|search|stars|team|usergroups|users|views)_[A-Za-z0-9_]+)\("
)
# Directories whose code talks to Slack (sandbox/ is the emulator, not a client).
_CLIENT_CODE = ("bot", "handlers", "rag", "policies")

# Package registries and mirrors the Dockerfile must not name: the build machine chooses them.
REGISTRY_HOSTS = (
    "pypi.org",
    "pypi.python.org",
    "files.pythonhosted.org",
    "download.pytorch.org",
    "deb.debian.org",
    "security.debian.org",
    "docker.io",
    "ghcr.io",
    "quay.io",
)


# --- kustomize ---------------------------------------------------------------------------------


def _require_kubectl() -> str:
    path = shutil.which("kubectl")
    if path is not None:
        return path
    message = "kubectl not found on PATH (needed for `kubectl kustomize deploy/`)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; CI=true requires it", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize deploy/`` renders."""
    proc = subprocess.run(
        [_require_kubectl(), "kustomize", str(DEPLOY)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"kubectl kustomize deploy/ failed:\n{proc.stderr}", pytrace=False)
    objects = [doc for doc in yaml.safe_load_all(proc.stdout) if doc is not None]
    assert objects, "kustomize rendered nothing"
    assert all(isinstance(doc, dict) for doc in objects)
    return objects


def _one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [obj for obj in objects if obj["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def _named(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [obj for obj in objects if obj["kind"] == kind and obj["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, got {len(found)}"
    return found[0]


def _container(rendered: list[dict[str, Any]]) -> dict[str, Any]:
    containers = _one(rendered, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def test_kustomize_renders_the_base_without_credentials(rendered: list[dict[str, Any]]) -> None:
    kinds = sorted(obj["kind"] for obj in rendered)
    assert kinds == sorted(
        [
            "ClusterRole",
            "ClusterRole",
            "ClusterRoleBinding",
            "ClusterRoleBinding",
            "ConfigMap",
            "Deployment",
            "Namespace",
            "PersistentVolumeClaim",
            "Secret",  # the remediator's token, filled in by the control plane
            "Service",
            "ServiceAccount",
            "ServiceAccount",
        ]
    )
    secret = _one(rendered, "Secret")
    assert secret["type"] == "kubernetes.io/service-account-token"
    assert "data" not in secret and "stringData" not in secret
    assert _one(rendered, "Namespace")["metadata"]["name"] == NAMESPACE
    for obj in rendered:
        if obj["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["metadata"]["name"]


def _api_group(prefix: str) -> str:
    """``/api/v1`` → ``""`` (core), ``/apis/apps/v1`` → ``apps``."""
    if prefix == "/api/v1":
        return ""
    match = re.fullmatch(r"/apis/([^/]+)/[^/]+", prefix)
    assert match, f"unexpected API prefix {prefix!r} in bot.kube.RESOURCES"
    return match.group(1)


def _rules(rendered: list[dict[str, Any]], name: str = READER) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = _named(rendered, "ClusterRole", name)["rules"]
    assert rules
    return rules


def _no_wildcards_or_secrets(rules: list[dict[str, Any]]) -> None:
    for rule in rules:
        assert "nonResourceURLs" not in rule, rule
        for field in ("apiGroups", "resources", "verbs", "resourceNames"):
            for value in rule.get(field, []):
                assert value != "*" and "*" not in value, f"wildcard in {field}: {rule}"
                assert "secret" not in value.lower(), f"{field} mentions secrets: {rule}"


def test_cluster_role_is_read_only(rendered: list[dict[str, Any]]) -> None:
    rules = _rules(rendered)
    _no_wildcards_or_secrets(rules)
    for rule in rules:
        assert set(rule["verbs"]) <= READ_VERBS, rule


def test_cluster_role_grants_exactly_what_the_kube_client_reads(
    rendered: list[dict[str, Any]],
) -> None:
    wanted = {(_api_group(res.prefix), res.plural) for res in RESOURCES.values()}
    wanted.add(("", "pods/log"))  # KubeReader.logs
    granted = {
        (group, resource)
        for rule in _rules(rendered)
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    assert wanted - granted == set(), "RESOURCES reads these without RBAC"
    assert granted - wanted == set(), "RBAC grants these but bot.kube never reads them"


@pytest.mark.parametrize("name", [READER, REMEDIATOR])
def test_each_binding_names_its_own_role_and_account(
    rendered: list[dict[str, Any]], name: str
) -> None:
    binding = _named(rendered, "ClusterRoleBinding", name)
    account = _named(rendered, "ServiceAccount", name)["metadata"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": _named(rendered, "ClusterRole", name)["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}
    ]


def test_the_bot_pod_runs_as_the_reader(rendered: list[dict[str, Any]]) -> None:
    pod = _one(rendered, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == READER
    # No pod runs as the remediator: its token is reachable only through the Secret below.
    assert _named(rendered, "ServiceAccount", REMEDIATOR)["automountServiceAccountToken"] is False


def _granted(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_remediation_role_grants_exactly_what_the_writer_may_send(
    rendered: list[dict[str, Any]],
) -> None:
    rules = _rules(rendered, REMEDIATOR)
    _no_wildcards_or_secrets(rules)
    assert all("resourceNames" not in rule for rule in rules)
    wanted = {(p.api_group, p.resource, verb) for p in REMEDIATION_PERMISSIONS for verb in p.verbs}
    granted = _granted(rules)
    assert wanted - granted == set(), "REMEDIATION_PERMISSIONS lists these without RBAC"
    assert granted - wanted == set(), "RBAC grants these but the remediation client never sends"
    # Narrow by construction: nothing is created, only pods are deleted, nothing is escalated.
    verbs = {verb for _, _, verb in granted}
    assert verbs <= {"get", "list", "patch", "update", "delete"}
    assert {resource for _, resource, verb in granted if verb == "delete"} == {"pods"}
    assert not {"escalate", "bind", "impersonate", "create", "deletecollection"} & verbs


def test_remediation_token_is_mounted_where_the_setting_expects_it(
    rendered: list[dict[str, Any]],
) -> None:
    secret = _one(rendered, "Secret")
    assert secret["metadata"]["annotations"] == {"kubernetes.io/service-account.name": REMEDIATOR}
    pod = _one(rendered, "Deployment")["spec"]["template"]["spec"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    token_file = Path(SETTINGS_DOC["INCIDENT_BOT_REMEDIATION_TOKEN_FILE"][0])
    (mount,) = [
        m for m in _container(rendered)["volumeMounts"] if m["mountPath"] == str(token_file.parent)
    ]
    assert mount["readOnly"] is True
    source = volumes[mount["name"]]["secret"]
    assert source["secretName"] == secret["metadata"]["name"]
    assert source["items"] == [{"key": "token", "path": token_file.name}]  # not ca.crt/namespace
    assert source["defaultMode"] == 0o440
    env = {var["name"] for var in _container(rendered)["env"]}
    assert "INCIDENT_BOT_REMEDIATION_TOKEN_FILE" not in env  # the default is the mount


def _secret_refs(container: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for var in container.get("env", []):
        ref = var.get("valueFrom", {}).get("secretKeyRef")
        if ref is not None:
            yield var["name"], ref


def test_deployment_sets_only_documented_settings(rendered: list[dict[str, Any]]) -> None:
    container = _container(rendered)
    config_map = _one(rendered, "ConfigMap")
    env_names = {var["name"] for var in container["env"]}
    secret_keys = {ref["key"] for _, ref in _secret_refs(container)}
    config_keys = set(config_map["data"])
    for what, names in (("env", env_names), ("Secret", secret_keys), ("ConfigMap", config_keys)):
        assert names - SETTINGS_DOC.keys() == set(), f"{what} names undocumented variables"
    assert [src["configMapRef"]["name"] for src in container["envFrom"]] == [
        config_map["metadata"]["name"]
    ]
    assert {"SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "INCIDENT_BOT_WEBHOOK_TOKEN"} <= secret_keys
    assert config_map["data"]["INCIDENT_BOT_KUBE_MODE"] == "in-cluster"


def test_secret_example_matches_what_the_deployment_reads(rendered: list[dict[str, Any]]) -> None:
    example = yaml.safe_load((DEPLOY / "secret.example.yaml").read_text())
    refs = dict(_secret_refs(_container(rendered)))
    assert {ref["name"] for ref in refs.values()} == {example["metadata"]["name"]}
    assert example["metadata"]["namespace"] == NAMESPACE
    required = {ref["key"] for ref in refs.values() if not ref.get("optional")}
    assert set(example["stringData"]) == required
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    assert "secret.example.yaml" not in kustomization["resources"]


def test_deployment_is_single_writer_and_locked_down(rendered: list[dict[str, Any]]) -> None:
    spec = _one(rendered, "Deployment")["spec"]
    pod = spec["template"]["spec"]
    container = _container(rendered)
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}  # SQLite on a ReadWriteOnce volume
    # A Service named incident-bot would otherwise inject INCIDENT_BOT_PORT=tcp://…
    assert pod["enableServiceLinks"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["limits"]["memory"] == "2Gi"


def test_deployment_probes_volumes_and_service_fit(rendered: list[dict[str, Any]]) -> None:
    pod = _one(rendered, "Deployment")["spec"]["template"]
    container = _container(rendered)
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"http": 8080}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}

    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod["spec"]["volumes"]}
    claim = _one(rendered, "PersistentVolumeClaim")
    data_dir = {var["name"]: var.get("value") for var in container["env"]}["INCIDENT_BOT_DATA_DIR"]
    data = volumes[mounts[data_dir]]
    assert data["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert "emptyDir" in volumes[mounts["/tmp"]]

    service = _one(rendered, "Service")["spec"]
    assert service["selector"].items() <= pod["metadata"]["labels"].items()
    assert service["ports"] == [{"name": "http", "port": 8080, "targetPort": "http"}]


def test_alertmanager_example_points_at_the_service(rendered: list[dict[str, Any]]) -> None:
    config = yaml.safe_load((DEPLOY / "alertmanager-receiver.example.yaml").read_text())
    service = _one(rendered, "Service")
    name, namespace = service["metadata"]["name"], service["metadata"]["namespace"]
    port = service["spec"]["ports"][0]["port"]
    (receiver,) = [r for r in config["receivers"] if r["name"] == config["route"]["receiver"]]
    (webhook,) = receiver["webhook_configs"]
    assert webhook["url"] == f"http://{name}.{namespace}.svc:{port}/alertmanager"
    assert webhook["send_resolved"] is True
    assert webhook["http_config"]["authorization"]["credentials_file"]


# --- Slack app manifest ------------------------------------------------------------------------


def _slack_methods_called() -> set[str]:
    methods: set[str] = set()
    for top in _CLIENT_CODE:
        for path in (ROOT / top).rglob("*.py"):
            methods.update(_SLACK_CALL.findall(path.read_text(encoding="utf-8")))
    return methods


def _manifest() -> dict[str, Any]:
    manifest = yaml.safe_load((ROOT / "manifest.yml").read_text(encoding="utf-8"))
    assert isinstance(manifest, dict)
    return manifest


_SLASH_COMMAND = re.compile(r"""\.command\(\s*["'](/[a-z-]+)["']""")


def _registered(pattern: re.Pattern[str]) -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "handlers").rglob("*.py"):
        found.update(pattern.findall(path.read_text(encoding="utf-8")))
    return found


def _slash_commands_registered() -> set[str]:
    return _registered(_SLASH_COMMAND)


_EVENT = re.compile(r"""\.event\(\s*["']([a-z_]+)["']""")


def _events_registered() -> set[str]:
    return _registered(_EVENT)


def test_manifest_subscribes_to_exactly_the_events_handled() -> None:
    registered = _events_registered()
    assert not registered - EVENT_SCOPES.keys(), "add the event and its scopes to EVENT_SCOPES"
    subscriptions = _manifest()["settings"].get("event_subscriptions") or {}
    assert set(subscriptions.get("bot_events") or []) == registered


def test_manifest_scopes_match_the_methods_called() -> None:
    called = _slack_methods_called()
    assert "chat_postMessage" in called  # the scan itself still works
    unknown = called - METHOD_SCOPES.keys()
    assert not unknown, f"add {sorted(unknown)} to METHOD_SCOPES and their scopes to manifest.yml"
    wanted = set().union(*(METHOD_SCOPES[method] for method in called))
    wanted |= set().union(*(EVENT_SCOPES.get(event, set()) for event in _events_registered()))
    if _slash_commands_registered():
        wanted.add("commands")
    manifest = _manifest()
    bot_scopes = manifest["oauth_config"]["scopes"]["bot"]
    assert len(bot_scopes) == len(set(bot_scopes))
    assert set(bot_scopes) == wanted
    assert set(manifest["oauth_config"]["scopes"]) == {"bot"}  # no user scopes


def _request_urls(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("request_url", "url") and isinstance(value, str):
                yield value
            else:
                yield from _request_urls(value)
    elif isinstance(node, list):
        for item in node:
            yield from _request_urls(item)


def test_manifest_describes_the_http_mode_app() -> None:
    manifest = _manifest()
    assert manifest["_metadata"] == {"major_version": 2, "minor_version": 1}
    assert manifest["features"]["bot_user"] == {
        "display_name": "incident-bot",
        "always_online": True,
    }
    settings = manifest["settings"]
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["socket_mode_enabled"] is False
    assert settings["org_deploy_enabled"] is False
    assert settings["token_rotation_enabled"] is False
    if "event_subscriptions" in settings:  # Slack rejects the section without events
        assert settings["event_subscriptions"].get("bot_events")
    urls = list(_request_urls(manifest))
    assert urls
    assert all(url.startswith("https://") and url.endswith("/slack/events") for url in urls)


# --- Dockerfile --------------------------------------------------------------------------------


def _dockerfile_instructions() -> list[str]:
    """Instructions with continuation lines joined; comments and blank lines dropped."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    instructions: list[str] = []
    current = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        instructions.append(current + stripped)
        current = ""
    assert not current, "Dockerfile ends inside a continued line"
    return instructions


def test_dockerfile_installs_the_makefiles_torch_before_the_project() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    pin = re.search(r"pip install .*\b(torch==\S+)", makefile)
    assert pin, "Makefile no longer pins torch"
    torch = pin.group(1)
    runs = "\n".join(i for i in _dockerfile_instructions() if i.upper().startswith("RUN "))
    torch_install = re.search(rf"pip install [^&;|\n]*{re.escape(torch)}(?!\S)", runs)
    project_install = re.search(r"pip install [^&;|\n]*\s\.(?=\s|$)", runs, re.MULTILINE)
    assert torch_install, f"Dockerfile does not `pip install {torch}`"
    assert project_install, "Dockerfile does not `pip install .`"
    assert torch_install.start() < project_install.start()


def test_dockerfile_names_no_registry() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8").lower()
    for host in REGISTRY_HOSTS:
        assert host not in text, host
    assert "index-url" not in text
    urls = re.findall(r"[a-z][a-z0-9+.-]*://[^\s'\"]+", text)
    assert all(re.match(r"https?://(127\.0\.0\.1|localhost)[:/]", url) for url in urls), urls


def test_dockerfile_runtime_stage() -> None:
    instructions = _dockerfile_instructions()
    stages = [i for i in instructions if i.upper().startswith("FROM ")]
    assert len(stages) >= 2, "expected a builder stage and a runtime stage"
    assert all(i.split()[1] == "python:3.11-slim-bookworm" for i in stages)
    runtime = instructions[instructions.index(stages[-1]) :]
    users = [i.split()[1] for i in runtime if i.upper().startswith("USER ")]
    assert users and users[-1].split(":")[0] == "10001"
    assert 'ENTRYPOINT ["incident-bot"]' in runtime
    assert 'CMD ["serve"]' in runtime
    assert "EXPOSE 8080" in runtime
    assert 'VOLUME ["/data"]' in runtime
    env = " ".join(i for i in runtime if i.upper().startswith("ENV "))
    assert "HF_HUB_OFFLINE=1" in env and "INCIDENT_BOT_DATA_DIR=/data" in env
    (health,) = [i for i in runtime if i.upper().startswith("HEALTHCHECK ")]
    assert "urllib" in health and "/healthz" in health


def test_every_slash_command_is_declared_with_a_usage_hint() -> None:
    registered = _slash_commands_registered()
    assert "/policy" in registered  # the scan itself still works
    declared = {c["command"]: c for c in _manifest()["features"].get("slash_commands", [])}
    assert set(declared) == registered
    for command in declared.values():
        assert command["url"].endswith("/slack/events")
        assert command.get("usage_hint") and command.get("description")
