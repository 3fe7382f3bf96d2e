"""Hostile uploads to `serve`: each gets the status the README promises, as JSON, never a 500."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from catalogue import UPLOADS
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from simplecnn.serve import create_app

LIMIT = 200_000


@pytest.fixture(scope="module")
def client(world):
    with TestClient(create_app(world["RUN"], max_upload_bytes=LIMIT)) as c:
        yield c


def _image(fmt: str, size=(40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 60, 50)).save(buf, fmt)
    return buf.getvalue()


def _bad_crc_png() -> bytes:
    data = bytearray(_image("PNG"))
    data[29] ^= 0xFF  # the IHDR chunk's CRC
    return bytes(data)


def _huge_png(side: int = 20000) -> bytes:
    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    raw = zlib.compress(b"".join([b"\0" * (1 + side // 8)] * side), 9)
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def _request(name: str) -> dict:
    one = lambda body: {"files": {"file": ("photo.jpg", body, "image/jpeg")}}  # noqa: E731
    return {
        "empty file": one(b""),
        "JPEG cut inside its header": one(_image("JPEG")[:20]),
        "PNG cut inside its header": one(_image("PNG")[:20]),
        "PNG with a bad checksum": one(_bad_crc_png()),
        "WebP cut short": one(_image("WEBP")[:30]),
        "GIF cut short": one(_image("GIF")[:15]),
        "BMP cut short": one(_image("BMP")[:20]),
        "TIFF (a real image of another type)": one(_image("TIFF")),
        "PDF": one(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n"),
        "HTML": one(b"<!doctype html><html><body>hi</body></html>"),
        "bytes over the upload limit": one(b"\xff\xd8\xff" + b"\0" * (LIMIT + 10)),
        "two files in one request": {"files": [("file", ("a.png", _image("PNG"), "image/png")),
                                               ("file", ("b.png", _image("PNG"), "image/png"))]},
        "the file under another field name": {"files": {"image": ("a.png", _image("PNG"), "image/png")}},
        "?explain=banana": {"files": {"file": ("a.png", _image("PNG"), "image/png")},
                            "params": {"explain": "banana"}},
        "an image over the pixel limit": one(_huge_png()),
    }[name]  # fmt: skip


@pytest.mark.parametrize("name, status", UPLOADS, ids=[n for n, _ in UPLOADS])
def test_a_hostile_upload_gets_the_promised_status_as_json(client, name, status):
    response = client.post("/predict", **_request(name))
    assert response.status_code == status, (name, response.status_code, response.text)
    message = response.json()["error"]
    assert isinstance(message, str) and message
    if name == "?explain=banana":
        assert "explain" in message
    if name == "two files in one request":
        assert "exactly one image" in message


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=2000), ctype=st.sampled_from(
    ["image/jpeg", "application/octet-stream", "text/plain", ""]))
def test_random_file_bodies_get_a_json_answer_never_a_500(client, body, ctype):
    response = client.post("/predict", files={"file": ("x", body, ctype)})
    assert response.status_code in (200, 400, 413, 415), response.text
    assert ("error" in response.json()) == (response.status_code != 200)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=600), ctype=st.sampled_from(
    ["multipart/form-data; boundary=xyz", "multipart/form-data", "application/json",
     "application/x-www-form-urlencoded", "text/plain", ""]),
    query=st.sampled_from(["", "?explain=1", "?explain=maybe", "?explain=", "?x=y"]))  # fmt: skip
def test_random_request_bodies_get_a_json_4xx_never_a_500(client, body, ctype, query):
    response = client.post("/predict" + query, content=body, headers={"content-type": ctype})
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert "error" in response.json()


def test_docs_work_offline(client):
    page = client.get("/docs")
    assert page.status_code == 200 and "/docs-static/swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower()
    asset = client.get("/docs-static/swagger-ui-bundle.js")
    assert asset.status_code == 200 and len(asset.content) > 100_000
