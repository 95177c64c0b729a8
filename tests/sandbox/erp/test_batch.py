"""The ERP sandbox's OData V2 ``$batch``, read back with the standard library's MIME parser."""

from __future__ import annotations

import email
import email.policy
from typing import Any

import httpx
import orjson
import pytest

from sandbox.erp.batch import MAX_PARTS
from tests.sandbox.erp.helpers import BD, BP, SO, erp, sap_error

pytestmark = pytest.mark.anyio

READS = [
    "A_BusinessPartner('1000001')",
    "A_BusinessPartner?$filter=BusinessPartner%20eq%20'1000002'%20or%20BusinessPartner%20eq"
    "%20'1000003'&$expand=to_BusinessPartnerAddress&$format=json",
    "A_BusinessPartner/$count",
    "A_BusinessPartner('1000004')/to_BusinessPartnerTax",
]


def batch_body(urls: list[str], boundary: str = "batch_xyz", newline: str = "\r\n") -> bytes:
    lines: list[str] = []
    for url in urls:
        lines += [
            f"--{boundary}",
            "Content-Type: application/http",
            "Content-Transfer-Encoding: binary",
            "",
            f"GET {url} HTTP/1.1",
            "Accept: application/json",
            "",
            "",
        ]
    lines.append(f"--{boundary}--")
    return (newline.join(lines) + newline).encode()


async def post_batch(
    client: httpx.AsyncClient,
    service: str,
    body: bytes,
    content_type: str = "multipart/mixed; boundary=batch_xyz",
    **kwargs: Any,
) -> httpx.Response:
    return await client.post(
        f"{service}/$batch", content=body, headers={"Content-Type": content_type}, **kwargs
    )


def answers(response: httpx.Response) -> list[tuple[int, dict[str, str], bytes]]:
    """(status, headers, body) per part of a batch answer."""
    assert response.status_code == 202, response.text
    head = f"Content-Type: {response.headers['content-type']}\r\n\r\n".encode()
    message = email.message_from_bytes(head + response.content, policy=email.policy.HTTP)
    assert message.is_multipart()
    found = []
    for part in message.iter_parts():
        assert part.get_content_type() == "application/http"
        assert part["Content-Transfer-Encoding"] == "binary"
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        head_bytes, _, body = payload.partition(b"\r\n\r\n")
        status_line, *header_lines = head_bytes.decode().split("\r\n")
        version, status, _ = status_line.split(" ", 2)
        assert version == "HTTP/1.1"
        headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
        assert int(headers["content-length"]) == len(body)
        found.append((int(status), headers, body))
    return found


async def test_reads_in_one_batch_answer_what_single_gets_answer(tmp_path):
    async with erp(tmp_path) as client:
        singles = [await client.get(f"{BP}/{url}") for url in READS]
        response = await post_batch(client, BP, batch_body(READS))
        assert response.headers["content-type"].startswith("multipart/mixed; boundary=")
        assert "batch_xyz" not in response.headers["content-type"]
        parts = answers(response)
        assert len(parts) == len(READS)
        for single, (status, headers, body) in zip(singles, parts, strict=True):
            assert status == single.status_code == 200
            assert body == single.content
            assert headers["content-type"] == single.headers["content-type"]
        assert parts[0][1]["content-type"] == "application/json"
        assert parts[0][1]["etag"] == singles[0].headers["etag"]


async def test_every_erp_service_answers_batches(tmp_path):
    async with erp(tmp_path) as client:
        for service, url in [
            (SO, "A_SalesOrder?$filter=SoldToParty%20eq%20'1000001'&$expand=to_Item"),
            (BD, "A_BillingDocument?$top=3"),
            (BP, f"{BP}/A_BusinessPartner('1000001')"),  # absolute within the service
        ]:
            single = await client.get(f"{service}/{url.removeprefix(f'{BP}/')}")
            [(status, _, body)] = answers(await post_batch(client, service, batch_body([url])))
            assert status == 200
            assert body == single.content


async def test_next_links_and_lf_only_bodies(tmp_path):
    async with erp(tmp_path, page_size=5) as client:
        url = "A_BusinessPartner?$top=8"
        single = await client.get(f"{BP}/{url}")
        [(status, _, body)] = answers(await post_batch(client, BP, batch_body([url], newline="\n")))
        assert status == 200
        assert body == single.content
        assert "$skiptoken=5" in orjson.loads(body)["d"]["__next"]


async def test_a_failing_part_answers_its_error_and_the_others_succeed(tmp_path):
    async with erp(tmp_path) as client:
        urls = [
            "A_BusinessPartner('1000001')",
            "A_BusinessPartner('0000000')",
            "A_Nothing",
            "A_BusinessPartner?$filter=Nope%20eq%20'1'",
            "A_BusinessPartner('1000002')",
        ]
        singles = [await client.get(f"{BP}/{url}") for url in urls]
        parts = answers(await post_batch(client, BP, batch_body(urls)))
        assert [p[0] for p in parts] == [200, 404, 404, 400, 200]
        for single, (status, headers, body) in zip(singles, parts, strict=True):
            assert status == single.status_code
            assert body == single.content
            assert headers["content-type"] == "application/json"
        error = orjson.loads(parts[1][2])["error"]
        assert "0000000" in error["message"]["value"]

        write = batch_body(["A_BusinessPartner"]).replace(b"GET ", b"POST ")
        [(status, _, body)] = answers(await post_batch(client, BP, write))
        assert status == 400
        assert "changeset" in orjson.loads(body)["error"]["message"]["value"]


MALFORMED = [
    ("text/plain", batch_body(READS[:1])),
    ("multipart/mixed", batch_body(READS[:1])),
    ("multipart/mixed; boundary=other", batch_body(READS[:1])),
    ("multipart/mixed; boundary=batch_xyz", batch_body(READS[:1])[:-16]),  # no closing line
    ("multipart/mixed; boundary=batch_xyz", b"--batch_xyz--\r\n"),  # no parts
    (
        "multipart/mixed; boundary=batch_xyz",
        batch_body(["A_BusinessPartner"]).replace(b" HTTP/1.1", b""),
    ),
    (
        "multipart/mixed; boundary=batch_xyz",
        batch_body(READS[:1]).replace(b"application/http", b"application/json"),
    ),
    (
        "multipart/mixed; boundary=batch_xyz",
        batch_body(READS[:1]).replace(b"binary", b"base64"),
    ),
]


async def test_malformed_batches_are_400_with_sap_body(tmp_path):
    async with erp(tmp_path) as client:
        for content_type, body in MALFORMED:
            response = await post_batch(client, BP, body, content_type)
            assert response.status_code == 400, (content_type, body)
            sap_error(response)

        quoted = await post_batch(
            client, BP, batch_body(READS[:1]), 'multipart/mixed; boundary="batch_xyz"'
        )
        assert len(answers(quoted)) == 1

        too_many = await post_batch(client, BP, batch_body(READS[:1] * (MAX_PARTS + 1)))
        assert too_many.status_code == 400
        assert str(MAX_PARTS) in sap_error(too_many)["message"]["value"]
        assert len(answers(await post_batch(client, BP, batch_body(READS[:1] * MAX_PARTS)))) == (
            MAX_PARTS
        )

        assert (await client.get(f"{BP}/$batch")).status_code == 405


async def test_changesets_are_refused(tmp_path):
    async with erp(tmp_path) as client:
        body = (
            b"--batch_xyz\r\n"
            b"Content-Type: multipart/mixed; boundary=changeset_1\r\n\r\n"
            b"--changeset_1\r\n"
            b"Content-Type: application/http\r\n"
            b"Content-Transfer-Encoding: binary\r\n\r\n"
            b"POST A_BusinessPartner HTTP/1.1\r\n"
            b"Content-Type: application/json\r\n\r\n"
            b'{"BusinessPartnerCategory": "2"}\r\n'
            b"--changeset_1--\r\n"
            b"--batch_xyz--\r\n"
        )
        before = (await client.get(f"{BP}/A_BusinessPartner/$count")).text
        response = await post_batch(client, BP, body)
        assert response.status_code == 400
        assert "changesets" in sap_error(response)["message"]["value"]
        assert (await client.get(f"{BP}/A_BusinessPartner/$count")).text == before


async def test_a_batch_is_one_request_for_auth_stats_and_chaos(tmp_path):
    async with erp(tmp_path) as client:
        await client.post("/_sandbox/reset")
        response = await post_batch(client, SO, batch_body(["A_SalesOrder?$top=1"] * 5))
        assert len(answers(response)) == 5
        stats = (await client.get("/_sandbox/stats")).json()
        assert stats["requests"] == 1
        assert stats["by_route"] == {f"POST {SO}/$batch": 1}

        anonymous = await post_batch(client, SO, batch_body(READS[:1]), auth=None)
        assert anonymous.status_code == 401
        sap_error(anonymous)

        await client.put("/_sandbox/chaos", json={"throttle": True})
        throttled = await post_batch(client, SO, batch_body(["A_SalesOrder?$top=1"] * 3))
        assert throttled.status_code == 503
        assert "Retry-After" in throttled.headers
        sap_error(throttled)
        await client.put("/_sandbox/chaos", json={"throttle": False, "outage": True})
        down = await post_batch(client, SO, batch_body(["A_SalesOrder?$top=1"]))
        assert down.status_code == 503


async def test_the_built_in_rate_limit_takes_one_token_per_batch(tmp_path):
    async with erp(tmp_path, rate=0.01, burst=2) as client:
        for _ in range(2):
            response = await post_batch(client, BP, batch_body(READS[:1] * 10))
            assert len(answers(response)) == 10
        limited = await post_batch(client, BP, batch_body(READS[:1]))
        assert limited.status_code == 503
        assert limited.headers["Retry-After"] == "1"
