"""Scenario files: the examples load, and each broken file names the broken field."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox.scenario import ScenarioError, load_scenario, parse_scenario

SCENARIOS = sorted((Path(__file__).parents[2] / "scenarios").glob("*.yaml"))


def minimal() -> dict[str, Any]:
    """The smallest valid scenario, with one object, one log and one series."""
    return {
        "name": "tiny",
        "now": "2026-11-20T10:15:00Z",
        "webhook": {"version": "4", "status": "firing", "alerts": [{"labels": {}}]},
        "cluster": {
            "objects": [
                {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a"}},
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": "web-1", "namespace": "shop"},
                },
            ],
            "logs": {"shop/web-1/web": {"current": "hello\n", "previous": "bye\n"}},
        },
        "metrics": [{"series": "up", "samples": [[-60, 1], [0, 0.5]]}],
    }


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda path: path.stem)
def test_every_example_scenario_loads(path: Path) -> None:
    scenario = load_scenario(path)

    assert scenario.name == path.stem
    assert scenario.path == path
    assert scenario.now.tzinfo is UTC
    assert scenario.webhook["alerts"]
    assert scenario.objects
    assert scenario.expected is not None and scenario.expected["category"]


def test_example_scenario_fields() -> None:
    scenario = load_scenario(Path(__file__).parents[2] / "scenarios" / "cart-oomkilled.yaml")

    assert scenario.now == datetime(2026, 11, 20, 10, 15, tzinfo=UTC)
    assert scenario.description.startswith("The cart service restarts")
    assert not scenario.description.endswith("\n")
    assert scenario.logs["shop/cart-7d9f8b6c4-x2x9q/cart"]["current"] == ""
    assert "GC pause" in scenario.logs["shop/cart-7d9f8b6c4-x2x9q/cart"]["previous"]
    assert scenario.metrics[0]["samples"][-1] == [0, 244000000]
    assert {obj["kind"] for obj in scenario.objects} == {
        "Deployment",
        "ReplicaSet",
        "Pod",
        "Event",
        "Node",
    }


def test_optional_sections_default_to_empty() -> None:
    data = minimal()
    del data["cluster"], data["metrics"]

    scenario = parse_scenario(data)

    assert (scenario.objects, scenario.logs, scenario.metrics) == ([], {}, [])
    assert scenario.expected is None
    assert scenario.description == ""
    assert scenario.path is None


def test_unknown_keys_are_ignored_and_missing_log_streams_are_empty() -> None:
    data = minimal()
    data["owner"] = "team-shop"
    data["cluster"]["logs"] = {"shop/web-1/web": {"previous": "bye\n"}}

    scenario = parse_scenario(data)

    assert scenario.logs == {"shop/web-1/web": {"current": "", "previous": "bye\n"}}


def test_unquoted_yaml_timestamps_become_api_strings(tmp_path: Path) -> None:
    text = yaml.safe_dump(minimal()).replace("'2026-11-20T10:15:00Z'", "2026-11-20T11:15:00+01:00")
    text += "expected: {category: oom_killed, since: 2026-11-20T10:00:00Z}\n"
    path = tmp_path / "tiny.yaml"
    path.write_text(text)

    scenario = load_scenario(path)

    assert scenario.now == datetime(2026, 11, 20, 10, 15, tzinfo=UTC)
    assert scenario.expected == {"category": "oom_killed", "since": "2026-11-20T10:00:00Z"}


def test_parsed_data_is_a_copy() -> None:
    data = minimal()
    scenario = parse_scenario(data)

    scenario.objects[0]["metadata"]["name"] = "changed"

    assert data["cluster"]["objects"][0]["metadata"]["name"] == "node-a"


def _set(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    """A mutation setting a dotted path (list indexes as numbers) in the minimal scenario."""

    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if value is _DELETE:
            del node[last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


_DELETE = object()
_POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1", "namespace": "shop"}}

BROKEN = [
    ("name", _set("name", _DELETE), "is required"),
    ("name", _set("name", ""), "must not be empty"),
    ("name", _set("name", 7), "must be a string, got int"),
    ("description", _set("description", ["x"]), "must be a string, got a list"),
    ("now", _set("now", _DELETE), "is required"),
    ("now", _set("now", "yesterday"), "not an RFC 3339 timestamp: 'yesterday'"),
    ("now", _set("now", "2026-11-20"), "not an RFC 3339 timestamp"),
    ("now", _set("now", "2026-11-20T10:15:00"), "not an RFC 3339 timestamp"),
    ("now", _set("now", "2026-13-20T10:15:00Z"), "not an RFC 3339 timestamp"),
    ("now", _set("now", datetime(2026, 11, 20, 10, 15)), "needs a UTC offset"),
    ("now", _set("now", 1763633700), "must be an RFC 3339 timestamp, got int"),
    ("webhook", _set("webhook", _DELETE), "is required"),
    ("webhook", _set("webhook", ["alerts"]), "must be a mapping, got a list"),
    ("webhook.alerts", _set("webhook.alerts", _DELETE), "is required"),
    ("webhook.alerts", _set("webhook.alerts", {"a": 1}), "must be a list, got a mapping"),
    ("cluster", _set("cluster", []), "must be a mapping, got a list"),
    ("cluster.objects", _set("cluster.objects", {"a": 1}), "must be a list"),
    ("cluster.objects[1]", _set("cluster.objects.1", "pod"), "must be a mapping"),
    (
        "cluster.objects[1].apiVersion",
        _set("cluster.objects.1.apiVersion", _DELETE),
        "must be a string, got nothing",
    ),
    ("cluster.objects[1].kind", _set("cluster.objects.1.kind", ""), "must not be empty"),
    ("cluster.objects[1].metadata", _set("cluster.objects.1.metadata", _DELETE), "mapping"),
    ("cluster.objects[1].metadata.name", _set("cluster.objects.1.metadata.name", _DELETE), "got"),
    (
        "cluster.objects[1].metadata.namespace",
        _set("cluster.objects.1.metadata.namespace", 3),
        "must be a string",
    ),
    (
        "cluster.objects[2].metadata.name",
        _set(
            "cluster.objects",
            [{"apiVersion": "v1", "kind": "Node", "metadata": {"name": "a"}}]
            + [_POD, {**_POD, "apiVersion": "v1"}],
        ),
        "duplicates cluster.objects[1]",
    ),
    ("cluster.logs", _set("cluster.logs", ["x"]), "must be a mapping"),
    (
        "cluster.logs['shop/web-1']",
        _set("cluster.logs", {"shop/web-1": {"current": "x"}}),
        "key must be '<namespace>/<pod>/<container>'",
    ),
    (
        "cluster.logs['shop//web']",
        _set("cluster.logs", {"shop//web": {"current": "x"}}),
        "key must be",
    ),
    ("cluster.logs['shop/web-1/web']", _set("cluster.logs.shop/web-1/web", "text"), "mapping"),
    (
        "cluster.logs['shop/web-1/web'].previous",
        _set("cluster.logs.shop/web-1/web", {"previous": 3}),
        "must be a string, got int",
    ),
    ("metrics", _set("metrics", {"series": "up"}), "must be a list"),
    ("metrics[0].series", _set("metrics.0.series", _DELETE), "must be a string"),
    ("metrics[0].samples", _set("metrics.0.samples", "1,2"), "must be a list"),
    ("metrics[0].samples[1]", _set("metrics.0.samples.1", [0]), "pair [seconds, value]"),
    ("metrics[0].samples[0]", _set("metrics.0.samples.0", ["-60", 1]), "pair"),
    ("metrics[0].samples[0]", _set("metrics.0.samples.0", [True, 1]), "pair"),
    ("expected", _set("expected", ["oom_killed"]), "must be a mapping"),
]


@pytest.mark.parametrize(
    ("field", "mutate", "problem"), BROKEN, ids=[f"{case[0]}:{case[2][:20]}" for case in BROKEN]
)
def test_broken_scenario_names_the_field(
    field: str, mutate: Callable[[dict[str, Any]], None], problem: str
) -> None:
    data = copy.deepcopy(minimal())
    mutate(data)

    with pytest.raises(ScenarioError) as caught:
        parse_scenario(data)

    assert caught.value.field == field
    assert problem in caught.value.problem
    assert str(caught.value) == f"<scenario>: {field}: {caught.value.problem}"
    assert "\n" not in str(caught.value)


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- name: x\n")

    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)

    assert caught.value.field == "<root>"
    assert str(caught.value) == f"{path}: <root>: must be a mapping, got a list"


def test_field_errors_carry_the_file_path(tmp_path: Path) -> None:
    data = minimal()
    data["cluster"]["objects"][1]["metadata"]["name"] = ""
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))

    with pytest.raises(ScenarioError, match=r"bad\.yaml: cluster\.objects\[1\]\.metadata\.name: "):
        load_scenario(str(path))


def test_invalid_yaml_is_a_one_line_file_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nnow: [unclosed\nwebhook: {}\n")

    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)

    assert caught.value.field == "<file>"
    assert caught.value.problem.startswith("invalid YAML at line 3, column 8")
    assert "\n" not in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_missing_file_is_a_file_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(tmp_path / "absent.yaml")

    assert caught.value.field == "<file>"
    assert caught.value.problem.startswith("cannot read:")
