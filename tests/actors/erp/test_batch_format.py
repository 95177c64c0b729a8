"""The ``$batch`` codec on its own: bodies built, answers read, against the sandbox's
writer and hand-written answers (no network)."""

from __future__ import annotations

import email
import email.policy

import pytest

from actors.erp.batch import (
    BatchFormatError,
    Headers,
    PartAnswer,
    build_get_batch,
    parse_batch_answer,
)
from sandbox.erp import batch as sandbox_batch

URLS = [
    "A_SalesOrder?$filter=SoldToParty%20eq%20'1000001'&$format=json",
    "A_SalesOrder('4711')",
    "A_SalesOrder/$count",
]


def test_a_built_batch_reads_back_as_the_same_gets():
    content_type, body = build_get_batch(URLS, headers={"Accept": "application/json"})
    assert content_type.startswith("multipart/mixed; boundary=batch_")
    requests = sandbox_batch.parse_batch(content_type, body)
    assert [(r.method, r.url) for r in requests] == [("GET", url) for url in URLS]
    assert all(dict(r.headers) == {"accept": "application/json"} for r in requests)
    assert b"\r\n" in body
    assert b"\n" not in body.replace(b"\r\n", b"")

    # the standard library's MIME reader sees the same parts
    message = email.message_from_bytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body, policy=email.policy.HTTP
    )
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["application/http"] * 3
    assert all(p["Content-Transfer-Encoding"] == "binary" for p in parts)


def test_round_trip_through_the_sandbox_writer():
    written = [
        sandbox_batch.PartAnswer(200, (("content-type", "application/json"),), b'{"d": {}}'),
        sandbox_batch.PartAnswer(404, (("content-type", "application/json"),), b'{"error": 1}'),
        sandbox_batch.PartAnswer(200, (("content-type", "text/plain"),), b"42"),
        sandbox_batch.PartAnswer(200, (("content-type", "application/json"),), b""),
    ]
    content_type, body = sandbox_batch.render_batch(written)
    parts = parse_batch_answer(content_type, body)
    assert [(p.status, p.body) for p in parts] == [(w.status, w.body) for w in written]
    assert parts[2].headers["Content-Type"] == "text/plain"
    assert parts[1].headers["content-type"] == "application/json"


def answer(newline: str, boundary: str = "batchresponse_1") -> bytes:
    lines = [
        "preamble, ignored",
        f"--{boundary}",
        "Content-Type: application/http",
        "Content-Transfer-Encoding: binary",
        "",
        "HTTP/1.1 200 OK",
        "Content-Type: application/json",
        "",
        '{"d": {"results": []}}',
        f"--{boundary}",
        "content-type: application/http",
        "content-transfer-encoding: binary",
        "",
        "HTTP/1.1 503 Service Unavailable",
        "Content-Type: application/json",
        "Retry-After: 7",
        "",
        '{"error": {"code": "/IWFND/CM_CONSUMER/503", "message": {"value": "busy"}}}',
        f"--{boundary}--",
        "epilogue, ignored",
    ]
    return newline.join(lines).encode()


@pytest.mark.parametrize("newline", ["\r\n", "\n"])
def test_crlf_and_bare_lf_answers_read_the_same(newline):
    parts = parse_batch_answer("multipart/mixed; boundary=batchresponse_1", answer(newline))
    assert [p.status for p in parts] == [200, 503]
    assert parts[0].body == b'{"d": {"results": []}}'
    assert parts[1].headers["retry-after"] == "7"
    assert parts[1].body.startswith(b'{"error"')
    assert parts[1].body.endswith(b"}}}")


def test_boundary_in_quotes_and_parameters_in_any_order():
    # "=", ":" and "/" are boundary characters that need the quotes (RFC 2046)
    body = answer("\r\n", boundary="batch=1:a/b")
    for content_type in (
        'multipart/mixed; boundary="batch=1:a/b"',
        'Multipart/Mixed;charset=utf-8; BOUNDARY="batch=1:a/b"',
    ):
        assert len(parse_batch_answer(content_type, body)) == 2
    simple = answer("\r\n", boundary="abc")
    assert len(parse_batch_answer('multipart/mixed; boundary="abc"', simple)) == 2
    assert len(parse_batch_answer("multipart/mixed;charset=utf-8;boundary=abc", simple)) == 2


def test_error_parts_keep_their_status_headers_and_body():
    [part] = parse_batch_answer(
        "multipart/mixed; boundary=b",
        b"--b\r\nContent-Type: application/http\r\n\r\n"
        b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\ncontent-length: 13\r\n\r\n"
        b'{"error": {}}\r\n\r\n'
        b"--b--\r\n",
    )
    assert part == PartAnswer(404, part.headers, b'{"error": {}}')
    assert dict(part.headers) == {"Content-Type": "application/json", "content-length": "13"}


MALFORMED = [
    ("application/json", answer("\r\n")),
    ("multipart/mixed", answer("\r\n")),
    ("multipart/mixed; boundary=other", answer("\r\n")),
    ("multipart/mixed; boundary=batchresponse_1", answer("\r\n")[:-40]),  # cut short
    ("multipart/mixed; boundary=batchresponse_1", answer("\r\n").replace(b"HTTP/1.1 200 OK", b"")),
    (
        "multipart/mixed; boundary=batchresponse_1",
        answer("\r\n").replace(b"Content-Type: application/http", b"Content-Type: text/plain"),
    ),
    (
        "multipart/mixed; boundary=b",
        b"--b\r\nContent-Type: application/http\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n{}\r\n--b--",
    ),
    (
        "multipart/mixed; boundary=b",
        b"--b\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n--c\r\n\r\n--c--\r\n--b--",
    ),
]


@pytest.mark.parametrize(("content_type", "body"), MALFORMED)
def test_unreadable_answers_raise_batch_format_error(content_type, body):
    with pytest.raises(BatchFormatError):
        parse_batch_answer(content_type, body)


def test_urls_must_be_encoded_and_headers_read_case_insensitively():
    with pytest.raises(ValueError, match="not encoded"):
        build_get_batch(["A_SalesOrder?$filter=a eq 'b'"])
    headers = Headers([("ETag", "W/1"), ("etag", "W/2")])
    assert headers["ETAG"] == "W/1"
    assert "Etag" in headers
    assert list(headers) == ["ETag"]
    assert len(headers) == 1
