"""A Foxglove client that subscribes to thousands of channels the live view does not
have gets one summary line in the robot's log, not a line per channel."""

from __future__ import annotations

import asyncio
import json
import logging
import threading

import pytest

pytest.importorskip("foxglove")
websockets = pytest.importorskip("websockets")

from omni_agent.live import LiveView  # noqa: E402

UNKNOWN = 5000


class Lines(logging.Handler):
    """Every line the Foxglove server logs at WARNING or above; `summary` is set when a
    line counts the whole burst."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []
        self.summary = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        if f"({UNKNOWN} lines like it in one)" in record.getMessage():
            self.summary.set()


async def test_subscribing_to_5000_unknown_channels_logs_one_line() -> None:
    lines = Lines()
    root = logging.getLogger("foxglove")
    root.addHandler(lines)
    view = LiveView(port=0)
    try:
        assert view.address is not None
        async with websockets.connect(view.address, subprotocols=["foxglove.sdk.v1"]) as ws:
            subs = [{"id": n, "channelId": 900_000 + n} for n in range(UNKNOWN)]
            await ws.send(json.dumps({"op": "subscribe", "subscriptions": subs}))
            # the summary goes out once the burst has been quiet a moment (or at close)
            await asyncio.to_thread(lines.summary.wait, 60)
    finally:
        view.close()
        root.removeHandler(lines)
    assert lines.summary.is_set(), lines.lines[:3]
    unknown = [line for line in lines.lines if "unknown channel" in line]
    assert len(unknown) == 1, unknown[:3]
