"""The kubectl vocabulary the parser checks against: flags, verbs, resource types, patterns.

Data only; :mod:`policies.kubectl` applies it.
"""

from __future__ import annotations

import re

_CREDENTIAL_FLAGS = frozenset(
    """as as-group as-uid token server kubeconfig context cluster user username password
    certificate-authority client-certificate client-key insecure-skip-tls-verify
    tls-server-name""".split()
)
_FILE_WRITING_FLAGS = frozenset({"cache-dir", "log-file", "log-dir", "profile", "profile-output"})
_INPUT_FLAGS = frozenset({"filename", "kustomize", "raw"})
_GLOBAL_OK = frozenset({"namespace", "request-timeout", "v"})
_MUTATION_OK = _GLOBAL_OK | {"output", "field-manager"}

# Long flags that take a value; every other long flag is read as a boolean.
_VALUE_WORDS = """namespace request-timeout v vmodule output selector field-selector filename
    kustomize sort-by label-columns template chunk-size container tail since since-time limit-bytes
    max-log-requests pod-running-timeout replicas current-replicas resource-version timeout
    to-revision revision limits requests patch patch-file type field-manager grace-period
    cascade for subresource raw dry-run types verbs api-group api-version output-directory
    env image"""
_VALUE_FLAGS = (
    frozenset(_VALUE_WORDS.split())
    | (_CREDENTIAL_FLAGS - {"insecure-skip-tls-verify"})
    | _FILE_WRITING_FLAGS
)

_FLAG_REASONS = {
    "all-namespaces": "--all-namespaces/-A would act across every namespace; name one object",
    "all": "--all would act on every object of the type; name exactly one",
    "selector": "a label selector (-l/--selector) would act on many objects; name exactly one",
    "field-selector": "a field selector would act on many objects; name exactly one",
    "force": "--force skips graceful deletion and safety checks",
    "grace-period": "--grace-period changes deletion semantics (0 forces it)",
    "now": "--now shortens graceful deletion",
    "cascade": "--cascade changes what else is deleted",
    "dry-run": "--dry-run is not accepted: the executor always runs its own server-side dry-run",
}

_GLOBAL_SHORT = {"n": "namespace", "s": "server", "v": "v"}
_SHORT: dict[str, dict[str, str]] = {
    "get": {"o": "output", "l": "selector", "w": "watch", "A": "all-namespaces",
            "L": "label-columns", "f": "filename", "k": "kustomize", "R": "recursive"},
    "describe": {"l": "selector", "A": "all-namespaces", "f": "filename", "k": "kustomize",
                 "R": "recursive"},
    "logs": {"c": "container", "f": "follow", "p": "previous", "l": "selector"},
    "top": {"l": "selector", "A": "all-namespaces"},
    "events": {"A": "all-namespaces", "o": "output", "w": "watch"},
    "explain": {},
    "api-resources": {"o": "output"},
    "api-versions": {},
    "version": {"o": "output"},
    "cluster-info": {},
    "rollout": {"f": "filename", "k": "kustomize", "l": "selector", "R": "recursive",
                "o": "output", "w": "watch"},
    "set": {"c": "container", "l": "selector", "f": "filename", "k": "kustomize",
            "R": "recursive", "o": "output", "e": "env"},
    "auth": {"A": "all-namespaces", "q": "quiet"},
    "scale": {"f": "filename", "k": "kustomize", "l": "selector", "R": "recursive",
              "o": "output"},
    "delete": {"f": "filename", "k": "kustomize", "l": "selector", "R": "recursive",
               "i": "interactive", "o": "output", "A": "all-namespaces"},
    "patch": {"p": "patch", "f": "filename", "k": "kustomize", "o": "output"},
    "cordon": {"l": "selector"},
    "uncordon": {"l": "selector"},
}  # fmt: skip

_READ_ONLY = frozenset(
    {"get", "describe", "logs", "top", "events", "explain", "api-resources", "api-versions",
     "version", "cluster-info", "rollout status", "rollout history", "auth can-i", "auth whoami"}
)  # fmt: skip
_GROUPS = {
    "rollout": ("status", "history", "restart", "undo", "pause", "resume"),
    "set": ("image", "resources", "env", "selector", "serviceaccount", "subject"),
    "auth": ("can-i", "whoami", "reconcile"),
}
_REFUSED_VERBS = {
    "apply": "applies arbitrary manifests; not a catalogue action",
    "create": "creates arbitrary objects; not a catalogue action",
    "replace": "replaces whole objects; not a catalogue action",
    "edit": "opens an interactive editor; not a catalogue action",
    "exec": "runs commands inside containers",
    "attach": "attaches to a running container",
    "cp": "copies files into or out of containers",
    "port-forward": "opens a network tunnel into the cluster",
    "proxy": "opens a proxy to the API server",
    "run": "starts arbitrary pods",
    "debug": "starts debug containers or node pods with arbitrary images",
    "drain": "evicts every pod on a node; not in the catalogue (cordon is)",
    "label": "changes labels (selectors, policies); not a catalogue action",
    "annotate": "changes annotations; not a catalogue action",
    "taint": "changes node taints; not a catalogue action",
    "expose": "creates services; not a catalogue action",
    "autoscale": "creates autoscalers; not a catalogue action",
    "certificate": "approves or denies certificate requests",
    "config": "reads or changes kubeconfig credentials",
    "plugin": "runs kubectl plugins",
    "kustomize": "renders manifests, possibly from remote sources",
    "diff": "runs an external diff program",
    "wait": "is not a supported verb",
    "alpha": "runs alpha features",
    "completion": "is not a cluster command",
    "rollout pause": "is not in the catalogue",
    "rollout resume": "is not in the catalogue",
    "set env": "can change secrets and configuration; not a catalogue action",
    "set selector": "changes selectors; not a catalogue action",
    "set serviceaccount": "changes workload identity; not a catalogue action",
    "set subject": "changes RBAC bindings; not a catalogue action",
    "auth reconcile": "changes RBAC rules",
    "cluster-info dump": "writes cluster state to files",
}
_WRAPPERS = frozenset(
    {"sudo", "su", "doas", "env", "exec", "eval", "sh", "bash", "zsh", "watch", "xargs",
     "timeout", "nohup", "time", "command", "builtin", "nice", "ionice", "strace"}
)  # fmt: skip

# resource name (singular, plural, short) → (Kind, API groups it may be qualified with)
_TYPES: dict[str, tuple[str, tuple[str, ...]]] = {}
for _kind_name, _names, _groups in (
    ("Deployment", ("deployment", "deployments", "deploy"), ("apps", "v1.apps")),
    ("StatefulSet", ("statefulset", "statefulsets", "sts"), ("apps", "v1.apps")),
    ("DaemonSet", ("daemonset", "daemonsets", "ds"), ("apps", "v1.apps")),
    ("Pod", ("pod", "pods", "po"), ("", "v1")),
    ("Node", ("node", "nodes", "no"), ("", "v1")),
    ("CronJob", ("cronjob", "cronjobs", "cj"), ("batch", "v1.batch")),
    (
        "HorizontalPodAutoscaler",
        ("horizontalpodautoscaler", "horizontalpodautoscalers", "hpa"),
        ("autoscaling", "v1.autoscaling", "v2.autoscaling"),
    ),
    ("Secret", ("secret", "secrets"), ("", "v1")),
):
    for _name in _names:
        _TYPES[_name] = (_kind_name, _groups)

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DIGITS = re.compile(r"^[0-9]{1,9}$")
_ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_SECRET_SAFE_OUTPUT = frozenset({"", "wide", "name"})
_MAX_VERBOSITY = 6
