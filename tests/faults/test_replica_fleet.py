"""Several robots share model replicas behind one balancer: when a replica goes away
before the first byte the client's retry reaches a live one; when it goes away mid-stream
the reply is never replayed (the robot may already have spoken), the turn fails once.

Real sockets on 127.0.0.1: two hostile-server replicas behind a round-robin TCP balancer
that, like an L4 balancer without health checks, drops the client when its pick is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator

import pytest

from bench.hostile import HostileServer
from omni_agent.config import ModelConfig
from omni_agent.model.client import ModelClient, ModelStreamError
from omni_agent.model.profiles import get_profile
from omni_agent.model.reply import ReplyAssembler
from omni_agent.model.request import UserInput, build_request

FAST = ModelConfig(retries=2, backoff_s=0.01, total_timeout_s=10)


class RoundRobin:
    """A TCP balancer over replica ports, each connection to the next replica in turn."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self._next = itertools.cycle(range(len(ports)))
        self.picks: list[int] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/v1"

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pick = next(self._next)
        self.picks.append(pick)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.ports[pick])
        except OSError:
            writer.transport.abort()  # the replica is gone: the client sees a reset
            return
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def __aenter__(self) -> RoundRobin:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()


def _port(server: HostileServer) -> int:
    return int(server.url.rsplit(":", 1)[1].split("/")[0])


@contextlib.asynccontextmanager
async def fleet() -> AsyncIterator[tuple[HostileServer, HostileServer, RoundRobin]]:
    async with contextlib.AsyncExitStack() as stack:
        a = await stack.enter_async_context(HostileServer())
        b = await stack.enter_async_context(HostileServer())
        balancer = await stack.enter_async_context(RoundRobin([_port(a), _port(b)]))
        yield a, b, balancer


async def _ask(client: ModelClient) -> str:
    profile = get_profile("vllm-omni-thinker")
    body = build_request(profile, FAST, "system", [], UserInput(text="hello"), ["say", "stop"])
    assembler = ReplyAssembler(profile.actions)
    spoken = []
    async for event in client.stream(body):
        if text := assembler.feed(event):
            spoken.append(text)
    assembler.finish()
    return "".join(spoken)


async def test_a_replica_gone_before_the_first_byte_is_retried_on_another() -> None:
    async with fleet() as (a, b, balancer):
        client = ModelClient(balancer.url, FAST)
        try:
            assert await _ask(client)  # replica a answers
            # Replica b goes away; the next connection is balanced onto it.
            assert b._server is not None
            b._server.close()
            await b._server.wait_closed()
            assert await _ask(client)  # reset by the balancer, retried, answered by a
            assert balancer.picks[:3] == [0, 1, 0]
            assert len(a.requests) == 2 and len(b.requests) == 0
        finally:
            await client.aclose()


async def test_a_replica_gone_mid_stream_is_not_replayed() -> None:
    async with fleet() as (a, b, balancer):
        a.case = "early_close"  # sends part of the reply, then the connection drops
        client = ModelClient(balancer.url, FAST)
        try:
            with pytest.raises(ModelStreamError, match="broke off"):
                await _ask(client)
            assert len(a.requests) == 1 and len(b.requests) == 0  # no second attempt
        finally:
            await client.aclose()
