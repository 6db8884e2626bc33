"""Fixtures: the REAL roomcast binary on an ephemeral loopback port, and event recorders.

`ROOMCAST_BIN` names the binary (scripts/test-python sets it); the default is the
workspace's `target/debug/roomcast`. Each server gets its own data directory and can be
stopped with SIGTERM or SIGKILL and started again on the same port with the same data.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from roomcast import ClientOptions, Ed25519Credentials, RoomcastClient

REPO = Path(__file__).resolve().parents[3]


def roomcast_bin() -> str:
    """Path of the server binary under test."""
    path = os.environ.get("ROOMCAST_BIN") or str(REPO / "target" / "debug" / "roomcast")
    if not Path(path).is_file():
        pytest.fail(f"roomcast binary not found at {path}; build it or set ROOMCAST_BIN")
    return path


class Server:
    """One roomcast process; `start()` waits for `listening on ws://ADDR` on stdout."""

    def __init__(self, data_dir: Path, args: list[str]) -> None:
        self.data_dir = data_dir
        self.args = args
        self.addr = ""
        self.proc: asyncio.subprocess.Process | None = None
        self._drain: asyncio.Task[None] | None = None
        self.log = data_dir / "server.log"

    @property
    def ws_url(self) -> str:
        """`ws://127.0.0.1:PORT`."""
        return f"ws://{self.addr}"

    @property
    def http_url(self) -> str:
        """`http://127.0.0.1:PORT`."""
        return f"http://{self.addr}"

    async def start(self, addr: str = "127.0.0.1:0") -> None:
        """Starts the binary and waits until it listens."""
        with open(self.log, "ab") as log:  # noqa: ASYNC230 (a local file, opened once)
            self.proc = await asyncio.create_subprocess_exec(
                roomcast_bin(),
                "serve",
                "--bind",
                addr,
                "--dev",
                "--data-dir",
                str(self.data_dir),
                "--shutdown-grace",
                "1",
                *self.args,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
            )
        assert self.proc.stdout is not None
        stdout = self.proc.stdout

        async def listening() -> str:
            while True:
                line = await stdout.readline()
                if not line:
                    raise RuntimeError(f"server exited before listening; see {self.log}")
                text = line.decode().strip()
                if text.startswith("listening on ws://"):
                    return text.removeprefix("listening on ws://")

        self.addr = await asyncio.wait_for(listening(), 30)

        async def drain() -> None:
            while await stdout.readline():
                pass

        self._drain = asyncio.create_task(drain())

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        """Sends `sig` and waits for the exit; returns the exit status."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return proc.returncode if proc and proc.returncode is not None else 0
        proc.send_signal(sig)
        code = await asyncio.wait_for(proc.wait(), 30)
        if self._drain is not None:
            await asyncio.gather(self._drain, return_exceptions=True)
        return code

    async def restart(self, sig: int = signal.SIGTERM) -> None:
        """Stops with `sig` and starts again on the same address and data."""
        addr = self.addr
        await self.stop(sig)
        await self.start(addr)


ServerFactory = Callable[..., Any]


@pytest.fixture
async def make_server(tmp_path: Path) -> AsyncIterator[ServerFactory]:
    """`await make_server(*args)` starts a server; all are stopped at teardown."""
    servers: list[Server] = []

    async def factory(*args: str) -> Server:
        data = tmp_path / f"server{len(servers)}"
        data.mkdir()
        server = Server(data, list(args))
        servers.append(server)
        await server.start()
        return server

    yield factory
    for server in servers:
        await server.stop(signal.SIGKILL)


@pytest.fixture
async def server(make_server: ServerFactory) -> Server:
    """A plain `--dev` server."""
    result: Server = await make_server()
    return result


def new_credentials(collective_id: str) -> Ed25519Credentials:
    """A fresh Ed25519 key for `collective_id`."""
    return Ed25519Credentials(collective_id, Ed25519PrivateKey.generate())


def write_collectives(path: Path, entries: list[tuple[Ed25519Credentials, int]]) -> Path:
    """Writes a `--collectives` TOML file (id, base64 public key, starting cash in cents)."""
    text = "".join(
        f'[[collective]]\nid = "{c.collective_id}"\npublic_key = "{c.public_key_b64()}"\n'
        f"starting_cash = {cash}\n\n"
        for c, cash in entries
    )
    path.write_text(text)
    return path


def write_private_pem(path: Path, credentials: Ed25519Credentials) -> Path:
    """Writes the key as unencrypted PKCS#8 PEM (what `roomcast keygen` writes)."""
    path.write_bytes(
        credentials.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


class Recorder:
    """Collects values (events, states) and lets a test await a condition on them."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._changed = asyncio.Event()

    def __call__(self, item: Any) -> None:
        self.items.append(item)
        self._changed.set()

    async def wait_until(self, predicate: Callable[[list[Any]], bool], timeout: float = 10) -> None:
        """Returns once `predicate(items)` holds; fails the test after `timeout` seconds."""

        async def loop() -> None:
            while not predicate(self.items):
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(loop(), timeout)
        except TimeoutError:
            pytest.fail(f"condition not met within {timeout} s; got {self.items[-10:]}")

    def of_type(self, *kinds: str) -> list[dict[str, Any]]:
        """The recorded JSON events whose `type` is one of `kinds`."""
        return [e for e in self.items if isinstance(e, dict) and e.get("type") in kinds]


async def connected(
    url: str, client_id: str, options: ClientOptions, on: str | None = None
) -> tuple[RoomcastClient, Recorder]:
    """A connected client; with `on`, its events of that kind (registered before connecting)
    go to the returned recorder."""
    client = RoomcastClient(url, client_id=client_id, options=options)
    events = Recorder()
    if on is not None:
        client.on(on, events)
    await client.connect()
    return client, events


async def member(url: str, client_id: str, room: str, options: ClientOptions) -> RoomcastClient:
    """A connected client subscribed to `room` (its events unread): a publisher."""
    client = RoomcastClient(url, client_id=client_id, options=options)
    await client.connect()
    await client.subscribe(room, Recorder())
    return client
