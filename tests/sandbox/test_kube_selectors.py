"""Selector corner cases that are awkward to reach through the HTTP client."""

from __future__ import annotations

import pytest

from sandbox.kube_selectors import (
    FieldSelector,
    LabelSelector,
    SelectorError,
    format_label_selector,
    supported_fields,
)


@pytest.mark.parametrize(
    ("selector", "labels", "selected"),
    [
        ("app.kubernetes.io/name=cart", {"app.kubernetes.io/name": "cart"}, True),
        ("env=", {"env": ""}, True),
        ("env=", {}, False),
        ("env!=", {}, True),
        ("env in (,prod)", {"env": ""}, True),
        ("version>9", {"version": "10"}, True),
        ("version>9", {"version": "x"}, False),
        ("version<9", {}, False),
        ("a,b", {"a": "1"}, False),
    ],
)
def test_label_selector_semantics(selector: str, labels: dict[str, str], selected: bool) -> None:
    assert LabelSelector.parse(selector).matches(labels) is selected


@pytest.mark.parametrize(
    "selector",
    ["a b", "a in (x", "a notin x", "a>x", "!", "a=b=c", "x" * 64, "a=" + "v" * 64, "-a=b"],
)
def test_malformed_label_selectors(selector: str) -> None:
    with pytest.raises(SelectorError, match="unable to parse requirement"):
        LabelSelector.parse(selector)


def test_field_selector_escapes_and_defaults() -> None:
    obj = {"metadata": {"name": "a,b=c"}, "spec": {}}

    assert FieldSelector.parse(r"metadata.name=a\,b\=c").matches(obj)
    assert FieldSelector.parse("spec.unschedulable=false").matches(obj)
    assert FieldSelector.parse("spec.hostNetwork!=true").matches(obj)
    assert FieldSelector.parse("source=kubelet").matches({"source": {"component": "kubelet"}})
    with pytest.raises(SelectorError, match="invalid escape sequence"):
        FieldSelector.parse(r"metadata.name=a\b")


def test_supported_fields_follow_the_resource() -> None:
    assert "spec.nodeName" in supported_fields("", "Pod", namespaced=True)
    assert "metadata.namespace" not in supported_fields("", "Node", namespaced=False)
    assert supported_fields("example.com", "Widget", namespaced=True) == {
        "metadata.name",
        "metadata.namespace",
    }


def test_format_label_selector_renders_match_expressions() -> None:
    selector = {
        "matchLabels": {"b": "2", "a": "1"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["web", "api"]},
            {"key": "legacy", "operator": "DoesNotExist"},
            {"key": "zone", "operator": "Exists"},
        ],
    }

    rendered = format_label_selector(selector)

    assert rendered == "a=1,b=2,tier in (api,web),!legacy,zone"
    assert LabelSelector.parse(rendered).matches({"a": "1", "b": "2", "tier": "web", "zone": "x"})
