"""A bounded fuzz run driven by the standard introspection query: no 5xx, every error
coded, no internal error (scripts/fuzz_graphql.py runs the same against a live gateway)."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path
from typing import Any

import pytest

from tests.graphql.conftest import OPS
from tests.graphql.stack import open_stack
from tests.support.paths import ROOT

pytestmark = pytest.mark.anyio

COUNT = 300


def _fuzz_module() -> Any:
    spec = importlib.util.spec_from_file_location(
        "fuzz_graphql", ROOT / "scripts" / "fuzz_graphql.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_generated_queries_never_answer_5xx(tmp_path: Path) -> None:
    fuzz = _fuzz_module()
    async with open_stack(tmp_path, customers=10) as stack:
        introspected = await stack.http.post(
            "/graphql", json=fuzz.introspection_payload(), headers=OPS
        )
        assert introspected.status_code == 200
        schema = fuzz.schema_from(introspected.json())
        fuzzer = fuzz.Fuzzer(schema, random.Random(11))
        findings = []
        for payload in fuzzer.payloads(COUNT):
            response = await stack.http.post("/graphql", json=payload, headers=OPS)
            try:
                body = response.json()
            except ValueError:
                body = response.text
            problem = fuzz.check_answer(response.status_code, body)
            if problem:
                findings.append((problem, payload))
        assert findings == []
