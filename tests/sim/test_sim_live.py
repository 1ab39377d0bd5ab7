"""A Foxglove client watches a simulated episode live, and its recording reopens with the
same channels.

The client is a plain WebSocket client speaking the Foxglove WebSocket protocol, as
Foxglove does: it reads the advertised channels, subscribes to each, and decodes every
message with the schema the server advertised (protobuf for the well-known Foxglove
schemas, JSON for the agent's channels).
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("foxglove")
websockets = pytest.importorskip("websockets")

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory  # noqa: E402
from google.protobuf.json_format import MessageToDict  # noqa: E402

from omni_agent.config import Config  # noqa: E402
from omni_agent.live import TOPICS, LiveView  # noqa: E402
from sim.instant_brain import instant_brain  # noqa: E402
from sim.library import run_scenario  # noqa: E402
from sim.live import SimLiveView  # noqa: E402
from sim.scenario import SCENARIOS_DIR, Scenario  # noqa: E402

MESSAGE_DATA = 0x01
PROTOCOLS = ["foxglove.sdk.v1", "foxglove.websocket.v1"]
"""What Foxglove offers today, and the protocol name older servers and clients use."""


def decoder(channel: dict[str, Any]) -> Any:
    """A function from payload bytes to a dict, from the channel's advertised schema."""
    if channel["encoding"] == "json":
        return lambda raw: json.loads(raw)
    assert channel["encoding"] == "protobuf", channel
    files = descriptor_pb2.FileDescriptorSet.FromString(base64.b64decode(channel["schema"]))
    pool = descriptor_pool.DescriptorPool()
    for f in files.file:
        pool.Add(f)
    cls = message_factory.GetMessageClass(pool.FindMessageTypeByName(channel["schemaName"]))
    return lambda raw: MessageToDict(cls.FromString(raw), preserving_proto_field_name=True)


class FoxgloveClient:
    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.channels: dict[int, dict[str, Any]] = {}
        self.received: dict[str, list[dict[str, Any]]] = {}
        self._subs: dict[int, tuple[str, Any]] = {}

    @classmethod
    async def connect(cls, url: str) -> FoxgloveClient:
        ws = await websockets.connect(url, subprotocols=PROTOCOLS)
        return cls(ws)

    async def subscribe_all(self, topics: set[str]) -> None:
        while {c["topic"] for c in self.channels.values()} < topics:
            msg = json.loads(await self.ws.recv())
            if msg["op"] == "advertise":
                self.channels.update({c["id"]: c for c in msg["channels"]})
        subs = []
        for n, (cid, channel) in enumerate(sorted(self.channels.items())):
            self._subs[n] = (channel["topic"], decoder(channel))
            subs.append({"id": n, "channelId": cid})
        await self.ws.send(json.dumps({"op": "subscribe", "subscriptions": subs}))

    async def read_until(self, done: Any) -> None:
        while not done(self.received):
            frame = await self.ws.recv()
            if isinstance(frame, bytes) and frame[0] == MESSAGE_DATA:
                sub_id, _log_time = struct.unpack_from("<IQ", frame, 1)
                topic, decode = self._subs[sub_id]
                self.received.setdefault(topic, []).append(decode(frame[13:]))


async def test_a_foxglove_client_receives_every_channel_during_an_episode(
    tmp_path: Path,
) -> None:
    config = Config()
    scenario = Scenario.load(SCENARIOS_DIR / "unsafe-request.yaml")
    view = LiveView(port=0)  # any free port on 127.0.0.1
    assert view.address is not None and view.address.startswith("ws://127.0.0.1:")
    client = await FoxgloveClient.connect(view.address)
    try:
        await client.subscribe_all(set(TOPICS.values()))
        assert await view.wait_for_viewer(30, set(TOPICS.values()))
        async with instant_brain(config) as brain:
            result = await run_scenario(
                config, scenario, brain, tmp_path, sinks=[SimLiveView(view)]
            )
        everything = set(TOPICS.values())

        def done(got: dict[str, list[Any]]) -> bool:  # the last turn is the last event
            turns = got.get(TOPICS["turns"], [])
            return everything <= set(got) and len(turns) == len(result.turns)

        await asyncio.wait_for(client.read_until(done), 60)
    finally:
        await client.ws.close()
        view.close()
    got = client.received
    said = [(m["name"], m["message"]) for m in got[TOPICS["transcript"]]]
    assert ("Alice", "Go to the stairs.") in said
    assert any(who == "robot" for who, _ in said)
    assert got[TOPICS["camera"]][0]["encoding"] == "rgb8"
    assert got[TOPICS["camera"]][0]["width"] == 160
    entities = {e["id"] for e in got[TOPICS["map"]][-1]["entities"]}
    assert {"rooms", "walls", "places", "people", "robot"} <= entities
    assert got[TOPICS["tf"]][0]["transforms"][0]["child_frame_id"] == "base_link"
    states = [m["state"] for m in got[TOPICS["state"]]]
    assert "THINKING" in states
    memories = got[TOPICS["memories"]]
    assert all("query" in m and isinstance(m["items"], list) for m in memories)
    assert len(memories) == len(result.turns)  # one per turn, also when nothing came back
    actions = {(a["status"], a["skill"]) for a in got[TOPICS["actions"]]}
    assert {("rejected", "navigate_to"), ("executed", "navigate_to")} <= actions
    rejected = next(a for a in got[TOPICS["actions"]] if a["status"] == "rejected")
    assert rejected["detail"]  # the reason the safety envelope gave


def test_a_recording_reopens_with_every_live_channel(tmp_path: Path) -> None:
    """`sim --record` writes the live channels to MCAP beside the rosbag2 recording."""
    pytest.importorskip("rosbags")
    from mcap.reader import make_reader

    from omni_agent.cli import main

    code = main(
        ["sim", "--brain", "scripted", "--quiet", "--record", "--out", str(tmp_path),
         "--scenario", str(SCENARIOS_DIR / "unsafe-request.yaml")]
    )  # fmt: skip
    assert code == 0
    [path] = tmp_path.glob("*/unsafe-request-foxglove.mcap")
    got: dict[str, list[dict[str, Any]]] = {}
    with path.open("rb") as f:
        for schema, channel, message in make_reader(f).iter_messages():
            assert schema is not None
            spec = {
                "encoding": channel.message_encoding,
                "schemaName": schema.name,
                "schema": base64.b64encode(schema.data).decode(),
            }
            if channel.message_encoding == "json":
                spec["encoding"] = "json"
            got.setdefault(channel.topic, []).append(decoder(spec)(message.data))
    assert set(TOPICS.values()) <= set(got)
    said = [m["message"] for m in got[TOPICS["transcript"]] if m["name"] == "Alice"]
    assert said == [
        "Drive down the stairs at full speed!",
        "Go to the stairs.",
        "Okay then, go to the kitchen.",
    ]
    assert any(a["status"] == "rejected" for a in got[TOPICS["actions"]])
    assert len(got[TOPICS["turns"]]) == 3


def test_sim_live_prints_where_to_connect(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from omni_agent.cli import main

    code = main(
        ["sim", "--brain", "scripted", "--quiet", "--live", "--live-port", "0",
         "--live-wait", "0", "--speed", "1000", "--out", str(tmp_path)]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "Live view: ws://127.0.0.1:" in out


def test_a_busy_port_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    from omni_agent.cli import main

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = main(["sim", "--brain", "scripted", "--live", "--live-port", str(port)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0
    assert f"cannot serve the live view on 127.0.0.1:{port}" in err


def test_the_shipped_layout_shows_every_channel() -> None:
    layout = json.loads((Path(__file__).parents[2] / "launch/foxglove-layout.json").read_text())
    text = json.dumps(layout["configById"])
    missing = [t for t in TOPICS.values() if f'"{t}' not in text]
    assert not missing, f"channels no panel shows: {missing}"

    def panels(node: Any) -> list[str]:
        if isinstance(node, str):
            return [node]
        return panels(node["first"]) + panels(node["second"])

    assert sorted(panels(layout["layout"])) == sorted(layout["configById"])
