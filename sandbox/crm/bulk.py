"""Bulk API 2.0 query jobs: ``/jobs/query``, answered as Salesforce does.

- ``POST /jobs/query`` ``{"operation": "query" | "queryAll", "query": "<SOQL>",
  "contentType": "CSV", "columnDelimiter": "COMMA", "lineEnding": "LF"}`` -> 200 job
  info, state ``UploadComplete``. The query is checked and run when the job is created
  (its rows are fixed then, as a cursor's are); what Bulk API 2.0 refuses is refused
  here with 400 ``INVALIDJOB``: COUNT() and other aggregates, OFFSET and parent-to-child
  subqueries. A query the SOQL parser rejects answers 400 ``API_ERROR`` with its message.
- ``GET /jobs/query/{id}``: the job info with ``numberRecordsProcessed``, ``retries``
  and ``totalProcessingTime``. Each read moves the job on: ``InProgress`` until it has
  been read ``polls_to_complete`` times, then ``JobComplete`` (deterministic, so tests
  know when a job completes; a huge ``polls_to_complete`` is a job that never does).
- ``GET /jobs/query/{id}/results?maxRecords=N&locator=L``: ``text/csv``, a header row
  then the rows, every value quoted (RFC 4180), booleans ``true``/``false``, a null as
  an empty value, datetimes as ``2026-11-01T09:00:00.000Z``; ``Sforce-NumberOfRecords``
  says how many rows came and ``Sforce-Locator`` names the next set (the string
  ``null`` after the last). Asked before ``JobComplete`` -> 400 ``JOB_NOT_COMPLETE``.
- ``PATCH /jobs/query/{id}`` ``{"state": "Aborted"}`` aborts a job not yet complete;
  ``DELETE /jobs/query/{id}`` -> 204 (not while ``InProgress``: abort it first);
  ``GET /jobs/query`` lists the jobs ``{"done", "records", "nextRecordsUrl"}``.

``queryAll`` reads what ``query`` reads: the sandbox keeps no recycle bin, so deleted
records are gone (their ids stay in the ``deleted/`` log). Jobs live in memory, the
newest ``MAX_JOBS`` of them, and are forgotten when the sandbox is reseeded.
"""

from __future__ import annotations

import base64
import csv
import io
import re
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sandbox.app import SandboxState
from sandbox.crm.calls import Answer, not_allowed
from sandbox.crm.query import QueryRunner
from sandbox.crm.schema import API_VERSION, SalesforceError, format_datetime
from sandbox.crm.soql import FieldPath, parse

__all__ = ["DEFAULT_MAX_RECORDS", "MAX_JOBS", "BulkQueryJobs"]

#: jobs kept at once (Salesforce keeps them for 7 days; the sandbox keeps the newest)
MAX_JOBS = 200
#: rows per result set when the client names no maxRecords
DEFAULT_MAX_RECORDS = 50_000
_DELIMITERS = {
    "COMMA": ",",
    "TAB": "\t",
    "PIPE": "|",
    "SEMICOLON": ";",
    "CARET": "^",
    "BACKQUOTE": "`",
}
_LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
_SUBQUERY = re.compile(r"\(\s*select\b", re.IGNORECASE)
_OFFSET = re.compile(r"\boffset\s+\d+", re.IGNORECASE)
#: the sandbox org's integration user, named as the creator of every job
_USER_ID = "005SB0000000001AAA"


def _now() -> str:
    return format_datetime(datetime.now(UTC))


@dataclass(slots=True)
class _Job:
    id: str
    operation: str
    object: str
    columns: list[FieldPath]
    rows: list[dict[str, Any]]
    created: str
    modstamp: str
    delimiter: str
    line_ending: str
    state: str = "UploadComplete"
    polls: int = 0

    def info(self, *, brief: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "object": self.object,
            "createdById": _USER_ID,
            "createdDate": self.created,
            "systemModstamp": self.modstamp,
            "state": self.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(API_VERSION),
            "jobType": "V2Query",
            "lineEnding": self.line_ending,
            "columnDelimiter": self.delimiter,
        }
        if not brief:
            done = self.state == "JobComplete"
            body["numberRecordsProcessed"] = len(self.rows) if done else 0
            body["retries"] = 0
            body["totalProcessingTime"] = 5 * self.polls if done else 0
            body["isPkChunkingSupported"] = True
        return body


def _invalid_job(message: str) -> SalesforceError:
    return SalesforceError(400, "INVALIDJOB", message)


def _option(body: dict[str, Any], key: str, allowed: dict[str, str], default: str) -> str:
    value = body.get(key, default)
    if value not in allowed:
        raise SalesforceError(
            400,
            "INVALIDJOB",
            f"Invalid value for {key}: {value!r}; expected one of {', '.join(allowed)}",
        )
    return str(value)


def _cell(value: Any, path: FieldPath) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if path.field.type == "datetime" and isinstance(value, str):
        return value.removesuffix("+0000") + "Z" if value.endswith("+0000") else value
    return str(value)


def _value(row: dict[str, Any], path: FieldPath) -> Any:
    if path.via is None:
        return row.get(path.field.name)
    assert path.via.relationship is not None
    parent = row.get(path.via.relationship)
    return parent.get(path.field.name) if isinstance(parent, dict) else None


def _locator(offset: int) -> str:
    """Salesforce's locators are opaque short strings (``MTAwMDA``): the offset, coded."""
    return base64.urlsafe_b64encode(str(offset).encode()).decode().rstrip("=")


def _offset(locator: str) -> int | None:
    try:
        raw = base64.urlsafe_b64decode(locator + "=" * (-len(locator) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return int(raw) if raw.isdigit() else None


class BulkQueryJobs:
    """The org's query jobs; ``polls_to_complete`` job reads until each completes."""

    def __init__(self, queries: QueryRunner, *, polls_to_complete: int = 2) -> None:
        self.queries = queries
        self.polls_to_complete = max(polls_to_complete, 1)
        self._jobs: OrderedDict[str, _Job] = OrderedDict()
        self._n = 0

    def reset(self) -> None:
        self._jobs.clear()

    def serve(
        self, state: SandboxState, method: str, parts: list[str], params: dict[str, str], body: Any
    ) -> Answer:
        """One call below ``/jobs/query`` (``parts`` follow ``query``)."""
        match parts:
            case []:
                if method == "POST":
                    return self._create(state, body)
                if method == "GET":
                    return self._list()
                raise not_allowed(method, "GET,POST")
            case [job_id]:
                if method == "GET":
                    return Answer(200, self._advance(self._job(job_id)).info())
                if method == "PATCH":
                    return self._abort(self._job(job_id), body)
                if method == "DELETE":
                    return self._delete(self._job(job_id))
                raise not_allowed(method, "GET,PATCH,DELETE")
            case [job_id, "results"]:
                if method != "GET":
                    raise not_allowed(method, "GET")
                return self._results(self._job(job_id), params)
        raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")

    # ---------------------------------------------------------------- resources

    def _create(self, state: SandboxState, body: Any) -> Answer:
        if not isinstance(body, dict):
            raise _invalid_job("The request body must be a JSON object with operation and query")
        operation = body.get("operation")
        if operation not in ("query", "queryAll"):
            raise _invalid_job(
                f"Invalid value for operation: {operation!r}; expected query or queryAll"
            )
        soql = body.get("query")
        if not isinstance(soql, str) or not soql.strip():
            raise _invalid_job("The query is missing: pass query: SELECT ... FROM ...")
        if body.get("contentType", "CSV") != "CSV":
            raise _invalid_job("Invalid value for contentType: only CSV is supported")
        delimiter = _option(body, "columnDelimiter", _DELIMITERS, "COMMA")
        line_ending = _option(body, "lineEnding", _LINE_ENDINGS, "LF")
        if _SUBQUERY.search(soql):
            raise _invalid_job(
                "Bulk API 2.0 does not support parent-to-child relationship queries "
                "(nested SELECT); query the child object with a child-to-parent field instead"
            )
        if _OFFSET.search(soql):
            raise _invalid_job("Bulk API 2.0 does not support OFFSET: read the whole result")
        try:
            query = parse(soql)
        except SalesforceError as exc:
            raise SalesforceError(400, "API_ERROR", f"{exc.code}: {exc}") from None
        if query.count:
            raise _invalid_job(
                "Bulk API 2.0 does not support aggregate functions such as COUNT(): "
                "use the REST query resource"
            )
        self._n += 1
        now = _now()
        job = _Job(
            id=f"750SB{self._n:010d}AAQ",
            operation=operation,
            object=query.obj.name,
            columns=list(query.fields),
            rows=self.queries.select(state, query),
            created=now,
            modstamp=now,
            delimiter=delimiter,
            line_ending=line_ending,
        )
        self._jobs[job.id] = job
        while len(self._jobs) > MAX_JOBS:
            self._jobs.popitem(last=False)
        return Answer(200, job.info(brief=True))

    def _list(self) -> Answer:
        records = [job.info(brief=True) for job in self._jobs.values()]
        return Answer(200, {"done": True, "records": records, "nextRecordsUrl": None})

    def _job(self, job_id: str) -> _Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise SalesforceError(404, "NOT_FOUND", f"Could not find job {job_id}")
        return job

    def _advance(self, job: _Job) -> _Job:
        if job.state in ("UploadComplete", "InProgress"):
            job.polls += 1
            job.state = "JobComplete" if job.polls >= self.polls_to_complete else "InProgress"
            job.modstamp = _now()
        return job

    def _abort(self, job: _Job, body: Any) -> Answer:
        if not isinstance(body, dict) or body.get("state") != "Aborted":
            raise _invalid_job('A query job can only be aborted: send {"state": "Aborted"}')
        if job.state not in ("UploadComplete", "InProgress"):
            raise SalesforceError(
                400, "INVALIDJOBSTATE", f"Job {job.id} is {job.state}: it can no longer be aborted"
            )
        job.state = "Aborted"
        job.modstamp = _now()
        return Answer(200, job.info(brief=True))

    def _delete(self, job: _Job) -> Answer:
        if job.state == "InProgress":
            raise SalesforceError(
                400, "INVALIDJOBSTATE", f"Job {job.id} is InProgress: abort it before deleting it"
            )
        del self._jobs[job.id]
        return Answer(204)

    def _results(self, job: _Job, params: dict[str, str]) -> Answer:
        if job.state != "JobComplete":
            raise SalesforceError(
                400,
                "JOB_NOT_COMPLETE",
                "can only download query results of successfully completed bulk job "
                f"with status: JobComplete. Current status: {job.state}",
            )
        raw_max = params.get("maxRecords", str(DEFAULT_MAX_RECORDS))
        if not raw_max.isdigit() or int(raw_max) < 1:
            raise SalesforceError(
                400, "INVALIDJOB", f"maxRecords must be a positive whole number, got {raw_max!r}"
            )
        start = 0
        if "locator" in params:
            found = _offset(params["locator"])
            if found is None or found > len(job.rows):
                raise SalesforceError(
                    400, "INVALIDJOB", f"Invalid locator {params['locator']!r} for job {job.id}"
                )
            start = found
        end = min(start + int(raw_max), len(job.rows))
        out = io.StringIO()
        writer = csv.writer(
            out,
            delimiter=_DELIMITERS[job.delimiter],
            lineterminator=_LINE_ENDINGS[job.line_ending],
            quoting=csv.QUOTE_ALL,
        )
        writer.writerow([path.text for path in job.columns])
        for row in job.rows[start:end]:
            writer.writerow([_cell(_value(row, path), path) for path in job.columns])
        headers = {
            "Sforce-NumberOfRecords": str(end - start),
            "Sforce-Locator": _locator(end) if end < len(job.rows) else "null",
        }
        return Answer(200, out.getvalue(), headers, media_type="text/csv")
