"""The diagnostics client is read-only: enforced before a request leaves the process."""

from __future__ import annotations

import pytest
from kubernetes import client as k8s

from bot.config import Settings
from bot.errors import ReadOnlyViolation
from bot.kube import RESOURCES, KubeReader, ReadOnlyApiClient, make_api_client
from sandbox.kube import KubeSandbox


def test_no_secrets_in_the_readable_kinds() -> None:
    assert "Secret" not in RESOURCES
    assert all(r.plural != "secrets" for r in RESOURCES.values())


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_non_get_methods_are_refused(method: str) -> None:
    api = ReadOnlyApiClient(k8s.Configuration(host="http://127.0.0.1:9"))
    with pytest.raises(ReadOnlyViolation, match="read-only"):
        api.call_api(method, "http://127.0.0.1:9/api/v1/namespaces/x/pods")
    api.close()  # type: ignore[no-untyped-call]


async def test_typed_write_calls_through_the_reader_never_reach_the_server() -> None:
    async with KubeSandbox([]) as sandbox:
        api = make_api_client(Settings(kube_mode="url", kube_url=sandbox.base_url))
        assert isinstance(api, ReadOnlyApiClient)
        core = k8s.CoreV1Api(api)
        with pytest.raises(ReadOnlyViolation):
            core.delete_namespace("prod")
        reader = KubeReader(api)
        assert await reader.list_objects("Pod", "default") == []
        reader.close()
        assert [method for method, _ in sandbox.requests] == ["GET"]
