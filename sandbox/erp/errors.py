"""How the ERP sandbox says no: SAP Gateway's OData V2 error body, and its throttle answer.

Body (SAP Gateway's OData V2 error format)::

    {"error": {"code": "...", "message": {"lang": "en", "value": "..."},
               "innererror": {"errordetails": [{"code", "message", "propertyref", "severity"}]}}}

Message codes are sandbox stand-ins in SAP's ``CLASS/NUMBER`` style. SAP has no 429: when
throttled the sandbox answers 503 with ``Retry-After``, as an SAP Gateway does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson
from starlette.responses import Response

__all__ = ["CODES", "ErpDialect", "ODataError", "error_response"]

#: default message code per HTTP status
CODES = {
    400: "/IWBEP/CM_MGW_RT/004",
    401: "/IWFND/CM_CONSUMER/101",
    403: "/IWFND/CM_CONSUMER/102",
    404: "/IWBEP/CM_MGW_RT/020",
    405: "/IWBEP/CM_MGW_RT/007",
    409: "/IWBEP/CM_MGW_RT/030",
    412: "/IWBEP/CM_MGW_RT/022",
    413: "/IWFND/CM_BEC/026",
    415: "/IWBEP/CM_MGW_RT/053",
    428: "/IWBEP/CM_MGW_RT/021",
    500: "/IWFND/CM_BEC/026",
    503: "/IWFND/CM_CONSUMER/503",
}


@dataclass(slots=True)
class ODataError(Exception):
    """Raised by handlers; turned into the SAP error body by the route wrapper."""

    status: int
    message: str
    propertyref: str = ""
    code: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status} {self.message}"

    def response(self) -> Response:
        return error_response(
            self.status, self.message, propertyref=self.propertyref, code=self.code,
            headers=self.headers,
        )  # fmt: skip


def error_response(
    status: int,
    message: str,
    *,
    propertyref: str = "",
    code: str = "",
    headers: dict[str, str] | None = None,
) -> Response:
    code = code or CODES.get(status, CODES[400 if status < 500 else 500])
    body = {
        "error": {
            "code": code,
            "message": {"lang": "en", "value": message},
            "innererror": {
                "errordetails": [
                    {
                        "code": code,
                        "message": message,
                        "propertyref": propertyref,
                        "severity": "error",
                    }
                ]
            },
        }
    }
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


class ErpDialect:
    """The chaos layer's voice for the ERP: SAP error bodies, 503 + Retry-After throttling."""

    system = "erp"

    def __init__(self, retry_after: int = 1) -> None:
        self.retry_after = retry_after

    def error_response(self, status: int, message: str) -> Response:
        return error_response(status, message)

    def throttle_response(self) -> Response:
        return error_response(
            503,
            "Service temporarily unavailable: too many requests. Retry after the given delay.",
            headers={"Retry-After": str(self.retry_after)},
        )
