"""`omni-agent serve` against what an attacker or a broken client sends: bad flags are
refused before any model is built, absurd bodies and images before they cost memory."""

from __future__ import annotations

import base64
import http.client
import json
import resource
import struct
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from omni_agent.cli import main
from serve.engines import load_engine
from tests.serve.conftest import serving
from tests.serve.interactive_omni_double import build_double
from tests.serve.test_serve_qwen_omni import TEXT, user


@pytest.mark.parametrize(
    "flags",
    [
        ["--max-body-mb", "-1"],
        ["--max-body-mb", "nan"],
        ["--max-tokens", "0"],
        ["--max-speech-s", "0"],
        ["--concurrency", "0"],
        ["--max-queue", "-1"],
        ["--port", "70000"],
    ],
    ids=lambda f: " ".join(f),
)
def test_bad_serve_flags_are_one_line_before_any_model_is_built(
    flags: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where --tiny builds its model
    code = main(["serve", "--tiny", *flags])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0 and err.startswith("omni-agent: error: "), err
    assert flags[0] in err
    assert list(tmp_path.iterdir()) == []  # no tiny model was built


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    engine = load_engine("interactive-omni", build_double(tmp_path_factory.mktemp("m")), "cpu")
    with serving(engine) as base:
        yield base


def _post(conn: http.client.HTTPConnection, body: bytes) -> tuple[int, dict[str, object], str]:
    conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    return response.status, json.loads(response.read()), response.getheader("connection") or ""


def test_a_body_nested_100k_deep_is_refused_and_the_connection_kept(url: str) -> None:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        for deep in (
            b"[" * 100_000 + b"]" * 100_000,
            # parses, but far deeper than any request: refused before it reaches the model
            json.dumps({"messages": user(TEXT), "metadata": "X"})
            .encode()
            .replace(b'"X"', b'{"a": ' * 200 + b"1" + b"}" * 200),
        ):
            status, body, connection = _post(conn, deep)
            assert status == 400
            assert "nested deeper than" in str(body["error"]["message"])  # type: ignore[index]
            assert connection.lower() != "close"
        # The same connection serves the next request.
        status, body, _ = _post(conn, json.dumps({"messages": user(TEXT)}).encode())
        assert status == 200
    finally:
        conn.close()


def _png_header_claiming(width: int, height: int) -> bytes:
    """A valid PNG of width x height black pixels: small compressed, huge decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    packer = zlib.compressobj(9)
    row = b"\0" * (width * 3 + 1)
    rows_at_once = 500
    idat = b"".join(packer.compress(row * rows_at_once) for _ in range(height // rows_at_once))
    idat += packer.compress(row * (height % rows_at_once)) + packer.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_a_huge_image_is_refused_from_its_header_without_decoding(url: str) -> None:
    png = _png_header_claiming(16_000, 16_000)  # 768 MB of pixels once decoded
    data_url = "data:image/png;base64," + base64.b64encode(png).decode()
    image = {"type": "image_url", "image_url": {"url": data_url}}
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=60)
    try:
        status, body, _ = _post(conn, json.dumps({"messages": user(image, TEXT)}).encode())
    finally:
        conn.close()
    assert status == 413
    assert "16000x16000 pixels is over the limit" in str(body["error"]["message"])  # type: ignore[index]
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert grown_mb < 300  # decoding would have taken 768 MB
