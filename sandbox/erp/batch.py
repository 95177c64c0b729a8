"""OData V2 ``$batch`` on the wire: reading a batch request, writing the batch answer.

A batch is a ``multipart/mixed`` body (RFC 2046). Each retrieve part is
``Content-Type: application/http`` with ``Content-Transfer-Encoding: binary`` and holds
one HTTP request (``GET <url relative to the service root> HTTP/1.1``, headers, a blank
line); the answer has one ``application/http`` part per request part, in order, each
holding an HTTP response. Changesets (a nested ``multipart/mixed`` part of writes) are
refused: this sandbox answers reads only in a batch.

Kept free of Starlette and of the store: ``sandbox.erp.routes`` dispatches the parts.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from http import HTTPStatus

from sandbox.erp.errors import ODataError

__all__ = ["MAX_PARTS", "PartAnswer", "PartRequest", "parse_batch", "render_batch"]

#: the most requests one batch may carry; SAP Gateway caps batches too, and a cap keeps
#: one sandbox call from costing the work of thousands
MAX_PARTS = 100
_REQUEST_LINE = re.compile(r"^([A-Z]+) (\S+) HTTP/1\.[01]$")
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")


@dataclass(frozen=True, slots=True)
class PartRequest:
    """One request of a batch: its method, URL (as sent) and headers (names lower-case)."""

    method: str
    url: str
    headers: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class PartAnswer:
    """The answer to one part: status, headers and the body the single request gets."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


def boundary_of(content_type: str) -> str:
    """The ``boundary`` of a ``multipart/mixed`` Content-Type (quoted or not)."""
    kind, _, rest = content_type.partition(";")
    if kind.strip().lower() != "multipart/mixed":
        raise ODataError(
            400, f"A $batch request needs Content-Type multipart/mixed, not '{kind.strip()}'"
        )
    for param in rest.split(";"):
        name, eq, value = param.partition("=")
        if eq and name.strip().lower() == "boundary":
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            if 0 < len(value) <= 70:
                return value
    raise ODataError(400, "The multipart/mixed Content-Type of the $batch request has no boundary")


def split_parts(body: bytes, boundary: str) -> list[bytes]:
    """The parts between ``--boundary`` lines, up to the closing ``--boundary--``.

    The line break before a delimiter belongs to the delimiter (RFC 2046), so a part's
    body ends where its content ends; preamble and epilogue are ignored.
    """
    delimiter = re.compile(
        rb"(?:^|\r?\n)--" + re.escape(boundary.encode("latin-1")) + rb"(--)?[ \t]*(?:\r?\n|$)"
    )
    parts: list[bytes] = []
    start: int | None = None
    for match in delimiter.finditer(body):
        if start is not None:
            parts.append(body[start : match.start()])
        if match.group(1):
            return parts
        start = match.end()
    raise ODataError(400, f"The $batch body does not end with the closing '--{boundary}--' line")


def _head_and_body(data: bytes, what: str) -> tuple[list[str], bytes]:
    """Header lines (the first may be a request or status line) and the body after them."""
    found = _BLANK_LINE.search(data)
    if found is None:
        head, body = data, b""
    else:
        head, body = data[: found.start()], data[found.end() :]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ODataError(400, f"The headers of {what} are not UTF-8") from exc
    return [line for line in re.split(r"\r?\n", text) if line], body


def _headers(lines: list[str], what: str) -> tuple[tuple[str, str], ...]:
    headers = []
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon or not name.strip() or name != name.strip():
            raise ODataError(400, f"Malformed header line in {what}: '{line[:80]}'")
        headers.append((name.lower(), value.strip()))
    return tuple(headers)


def parse_batch(content_type: str, body: bytes) -> list[PartRequest]:
    """The requests of a batch, in order; ODataError 400 when it cannot be read."""
    boundary = boundary_of(content_type)
    parts = split_parts(body, boundary)
    if not parts:
        raise ODataError(400, "The $batch request contains no requests")
    if len(parts) > MAX_PARTS:
        raise ODataError(
            400,
            f"The $batch request has {len(parts)} parts; this sandbox takes at most {MAX_PARTS}",
        )
    requests = []
    for n, part in enumerate(parts, 1):
        what = f"batch part {n}"
        lines, message = _head_and_body(part, what)
        mime = dict(_headers(lines, what))
        kind = mime.get("content-type", "").split(";")[0].strip().lower()
        if kind == "multipart/mixed":
            raise ODataError(
                400,
                f"Batch part {n} is a changeset: changesets (writes in a batch) are not "
                "supported by this sandbox; send writes as single requests",
            )
        if kind != "application/http":
            raise ODataError(400, f"Batch part {n} must have Content-Type application/http")
        encoding = mime.get("content-transfer-encoding", "binary").lower()
        if encoding != "binary":
            raise ODataError(400, f"Batch part {n} must have Content-Transfer-Encoding binary")
        http_lines, _ = _head_and_body(message, what)
        if not http_lines:
            raise ODataError(400, f"Batch part {n} holds no request line")
        line = _REQUEST_LINE.match(http_lines[0])
        if line is None:
            raise ODataError(
                400,
                f"Batch part {n} has no request line 'GET <url> HTTP/1.1': '{http_lines[0][:80]}'",
            )
        headers = _headers(http_lines[1:], what)
        requests.append(PartRequest(line.group(1), line.group(2), headers))
    return requests


def render_batch(answers: list[PartAnswer]) -> tuple[str, bytes]:
    """The batch answer: (its Content-Type with a fresh boundary, its body)."""
    boundary = f"batchresponse_{secrets.token_hex(12)}"
    out: list[bytes] = []
    for answer in answers:
        try:
            reason = HTTPStatus(answer.status).phrase
        except ValueError:
            reason = ""
        lines = [f"HTTP/1.1 {answer.status} {reason}".rstrip()]
        lines += [f"{name}: {value}" for name, value in answer.headers]
        lines.append(f"content-length: {len(answer.body)}")
        message = ("\r\n".join(lines) + "\r\n\r\n").encode() + answer.body
        out.append(
            f"--{boundary}\r\n"
            "Content-Type: application/http\r\n"
            f"Content-Length: {len(message)}\r\n"
            "Content-Transfer-Encoding: binary\r\n\r\n".encode()
            + message
            + b"\r\n"
        )
    out.append(f"--{boundary}--\r\n".encode())
    return f"multipart/mixed; boundary={boundary}", b"".join(out)
