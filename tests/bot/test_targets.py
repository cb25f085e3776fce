from __future__ import annotations

import pytest

from bot.targets import ObjectRef, group_key, label_object, owner_from_name


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"namespace": "shop", "pod": "cart-1"}, "shop/Pod/cart-1"),
        ({"namespace": "shop", "deployment": "cart"}, "shop/Deployment/cart"),
        ({"namespace": "db", "statefulset": "pg"}, "db/StatefulSet/pg"),
        ({"namespace": "ops", "job_name": "backup-1"}, "ops/Job/backup-1"),
        ({"namespace": "shop", "persistentvolumeclaim": "d"}, "shop/PersistentVolumeClaim/d"),
        ({"node": "node-a"}, "Node/node-a"),
        ({"namespace": "shop", "job": "kube-state-metrics"}, None),
        ({"namespace": "shop", "service": "kube-state-metrics"}, None),
        ({}, None),
    ],
)
def test_label_object(labels: dict[str, str], expected: str | None) -> None:
    obj = label_object(labels)
    assert (str(obj) if obj else None) == expected


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        ("cart-7d9f8b6c4-x2x9q", "shop/Deployment/cart"),
        ("checkout-api-5b8c7d9f6-q7m2k", "shop/Deployment/checkout-api"),
        ("postgres-0", "shop/StatefulSet/postgres"),
        ("standalone", "shop/Pod/standalone"),
    ],
)
def test_owner_from_name(pod: str, expected: str) -> None:
    assert str(owner_from_name(ObjectRef("Pod", pod, "shop"))) == expected


def test_object_ref_round_trip() -> None:
    for text in ("shop/Deployment/cart", "Node/node-a"):
        assert str(ObjectRef.parse(text)) == text
    with pytest.raises(ValueError):
        ObjectRef.parse("nope")


def test_group_key() -> None:
    assert group_key("A", "ns", None) == "A|ns|"
    assert group_key("A", "ns", ObjectRef("Deployment", "x", "ns")) == "A|ns|ns/Deployment/x"
