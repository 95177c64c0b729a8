"""OData V2 ``$batch`` for reads: the request body of GETs, and the parts of the answer.

A batch is ``multipart/mixed`` (RFC 2046): one ``application/http`` part per request,
``Content-Transfer-Encoding: binary``, each holding ``GET <url> HTTP/1.1``, its headers and
a blank line. The answer holds one ``application/http`` part per request, in order, each
an HTTP response (status line, headers, blank line, body)::

    content_type, body = build_get_batch(["A_SalesOrder?$filter=...", ...])
    parts = parse_batch_answer(response.headers["Content-Type"], response.body)

Line breaks may be CRLF (as written here) or bare LF; a boundary may be quoted. An answer
that cannot be read raises ``BatchFormatError`` (a ``ValueError``), naming what is wrong.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["BatchFormatError", "Headers", "PartAnswer", "build_get_batch", "parse_batch_answer"]

_STATUS_LINE = re.compile(r"^HTTP/1\.[01] (\d{3})(?: .*)?$")
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_LINE_BREAK = re.compile(r"\r?\n")


class BatchFormatError(ValueError):
    """A batch answer that is not the multipart message OData V2 describes."""


class Headers(Mapping[str, str]):
    """A part's headers, read case-insensitively as HTTP headers are (first value wins)."""

    __slots__ = ("_items",)

    def __init__(self, items: Sequence[tuple[str, str]] = ()) -> None:
        self._items: dict[str, tuple[str, str]] = {}
        for name, value in items:
            self._items.setdefault(name.lower(), (name, value))

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({list(self._items.values())!r})"


@dataclass(frozen=True, slots=True)
class PartAnswer:
    """One part of a batch answer: what the single request would have answered."""

    status: int
    headers: Headers
    body: bytes


def build_get_batch(
    urls: Sequence[str],
    *,
    headers: Mapping[str, str] | None = None,
    boundary: str | None = None,
) -> tuple[str, bytes]:
    """(Content-Type, body) of a batch of one ``GET`` per URL (relative to the service
    root, already percent-encoded), each part sent with ``headers``."""
    boundary = boundary or f"batch_{secrets.token_hex(12)}"
    extra = [f"{name}: {value}" for name, value in (headers or {}).items()]
    lines: list[str] = []
    for url in urls:
        if any(c in url for c in " \r\n"):
            raise ValueError(f"batch URL {url[:80]!r} is not encoded: no spaces or line breaks")
        lines += [
            f"--{boundary}",
            "Content-Type: application/http",
            "Content-Transfer-Encoding: binary",
            "",
            f"GET {url} HTTP/1.1",
            *extra,
            "",
            "",
        ]
    lines.append(f"--{boundary}--")
    return f"multipart/mixed; boundary={boundary}", ("\r\n".join(lines) + "\r\n").encode()


def parse_batch_answer(content_type: str, body: bytes) -> list[PartAnswer]:
    """The parts of a batch answer, in order."""
    parts = _split(body, _boundary(content_type))
    answers = []
    for n, part in enumerate(parts, 1):
        mime_lines, message = _head_and_body(part, f"part {n}")
        mime = Headers(_headers(mime_lines, f"part {n}"))
        kind = mime.get("Content-Type", "").split(";")[0].strip().lower()
        if kind != "application/http":
            raise BatchFormatError(
                f"batch answer part {n} is {kind or 'untyped'!r}, not application/http"
                + (" (a changeset answer: only reads are batched)" if "multipart" in kind else "")
            )
        http_lines, payload = _head_and_body(message, f"part {n}")
        status = _STATUS_LINE.match(http_lines[0]) if http_lines else None
        if status is None:
            shown = http_lines[0][:80] if http_lines else ""
            raise BatchFormatError(f"batch answer part {n} has no status line: {shown!r}")
        headers = Headers(_headers(http_lines[1:], f"part {n}"))
        answers.append(PartAnswer(int(status.group(1)), headers, _framed(payload, headers, n)))
    return answers


def _framed(payload: bytes, headers: Headers, n: int) -> bytes:
    """The body as its Content-Length frames it (servers may add line breaks after it)."""
    length = headers.get("Content-Length", "")
    if not length.isdigit():
        return payload
    if int(length) > len(payload):
        raise BatchFormatError(
            f"batch answer part {n} is cut short: {len(payload)} of {length} bytes"
        )
    return payload[: int(length)]


def _boundary(content_type: str) -> str:
    kind, _, rest = content_type.partition(";")
    if kind.strip().lower() != "multipart/mixed":
        raise BatchFormatError(
            f"batch answer is {kind.strip() or 'untyped'!r}, not multipart/mixed"
        )
    for param in rest.split(";"):
        name, eq, value = param.partition("=")
        if eq and name.strip().lower() == "boundary":
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            if value:
                return value
    raise BatchFormatError(f"batch answer's Content-Type has no boundary: {content_type!r}")


def _split(body: bytes, boundary: str) -> list[bytes]:
    """The parts between ``--boundary`` lines, up to the closing ``--boundary--``; the line
    break before a delimiter belongs to the delimiter (RFC 2046), not to the part."""
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
    raise BatchFormatError(f"batch answer ends before its closing '--{boundary}--' line")


def _head_and_body(data: bytes, what: str) -> tuple[list[str], bytes]:
    found = _BLANK_LINE.search(data)
    head, body = (data, b"") if found is None else (data[: found.start()], data[found.end() :])
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BatchFormatError(f"the headers of batch answer {what} are not UTF-8") from exc
    return [line for line in _LINE_BREAK.split(text) if line], body


def _headers(lines: list[str], what: str) -> list[tuple[str, str]]:
    pairs = []
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise BatchFormatError(f"batch answer {what} has a malformed header: {line[:80]!r}")
        pairs.append((name.strip(), value.strip()))
    return pairs
