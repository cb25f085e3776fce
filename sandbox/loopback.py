"""The lifecycle every sandbox server shares: bind loopback, port 0, start/stop, ``async with``."""

from __future__ import annotations

from ipaddress import ip_address
from types import TracebackType
from typing import Self

from aiohttp import web


class LoopbackServer:
    """An aiohttp server on a loopback address. Subclasses build the app in :meth:`make_app`.

    Handlers of requests whose client went away are cancelled (``handler_cancellation``), so
    a request sleeping in a scripted delay does not outlive the test that gave up on it.
    """

    name = "sandbox"

    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None

    def make_app(self) -> web.Application:
        """The application to serve."""
        raise NotImplementedError

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Start serving and return the base URL; ``port=0`` picks a free port.

        Raises:
            ValueError: ``host`` is not a loopback address.
            RuntimeError: The server is already running.
        """
        if self._runner is not None:
            raise RuntimeError(f"{self.name} is already running")
        if host != "localhost" and not ip_address(host).is_loopback:
            raise ValueError(f"{self.name} binds loopback addresses only, not {host!r}")
        runner = web.AppRunner(
            self.make_app(), access_log=None, handler_cancellation=True, shutdown_timeout=0.5
        )
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        bound_host, bound_port = runner.addresses[0][:2]
        self._runner = runner
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self._base_url = f"http://{shown}:{bound_port}"
        return self._base_url

    async def stop(self) -> None:
        """Stop serving and release the port; requests in flight are cancelled."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` of the running server."""
        if self._base_url is None:
            raise RuntimeError(f"{self.name} is not started")
        return self._base_url
