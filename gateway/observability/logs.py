"""Structured logs: one JSON object a line, with level, logger, correlation id, no secrets.

``configure_logging()`` (called by ``crosswalk serve`` and ``crosswalk sandbox``) sends
every record of level ``CROSSWALK_LOG_LEVEL`` (default ``INFO``) and above to standard
error as a JSON line::

    {"ts": "2026-12-04T03:22:01.123Z", "level": "warning", "logger": "gateway.runtime",
     "message": "...", "correlation_id": "..."}

``redact()`` runs over the message and any traceback before they are written: bearer
and basic credentials, ``key=value`` pairs whose key names a secret (api keys, tokens,
secrets, passwords, signatures), Stripe secret and webhook keys, Salesforce session ids,
the demo clients' keys and card-like numbers become ``[REDACTED]``.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time

import orjson

from actors.context import current_call

__all__ = ["JsonFormatter", "configure_logging", "redact"]

_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization: Bearer <token> / Basic <base64>
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=!:@-]+"), r"\1 [REDACTED]"),
    # api_key=..., "secret": "...", token: ..., password=..., Stripe-Signature: t=..,v1=..
    (
        re.compile(
            r"(?i)\b([\w-]*(?:api[_-]?key|secret|token|password|passwd|signature|"
            r"authorization|credentials?)[\w-]*)(\"?'?\s*[:=]\s*\"?'?)([^\s\"';&}]+)"
        ),
        r"\1\2[REDACTED]",
    ),
    # Stripe secret, restricted and webhook keys
    (re.compile(r"\b(?:sk|rk)_(?:test|live)_[A-Za-z0-9]+|\bwhsec_[A-Za-z0-9_]+"), "[REDACTED]"),
    # a Salesforce session id (org id, '!', token)
    (re.compile(r"\b00D[A-Za-z0-9]{0,15}![A-Za-z0-9._]+"), "[REDACTED]"),
    # the demo clients' API keys
    (re.compile(r"\bdemo-[a-z]+-key\b"), "[REDACTED]"),
    # card-like numbers: 13 to 19 digits, spaces or dashes allowed between them
    (re.compile(r"\b\d(?:[ -]?\d){12,18}\b"), "[REDACTED]"),
)


def redact(text: str) -> str:
    """``text`` with every secret the rules above know replaced by ``[REDACTED]``."""
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return text


class JsonFormatter(logging.Formatter):
    """One JSON object a line; the message and traceback redacted."""

    def format(self, record: logging.LogRecord) -> str:
        moment = time.gmtime(record.created)
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", moment) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        call = current_call()
        if call is not None:
            entry["correlation_id"] = call.correlation_id
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(entry).decode()


def configure_logging(level: str | None = None) -> None:
    """JSON lines on standard error for every record at ``level`` and above."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((level or os.environ.get("CROSSWALK_LOG_LEVEL") or "INFO").upper())
