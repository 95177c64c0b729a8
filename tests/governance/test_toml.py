"""The shared policy reader: each getter names the dotted key, what it expected and found."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from canonical import System
from gateway.governance._toml import PolicyTable
from gateway.governance.errors import PolicyError


def table(**data: Any) -> PolicyTable:
    return PolicyTable("p.toml", "top.sub", data)


@pytest.mark.parametrize(
    ("data", "read", "key", "reason"),
    [
        ({}, lambda t: t.string("a"), "top.sub.a", "missing; this key is required"),
        ({"a": ""}, lambda t: t.string("a"), "top.sub.a", "must be a non-empty string, got ''"),
        ({"a": 1}, lambda t: t.boolean("a"), "top.sub.a", "must be true or false, got 1"),
        ({"a": True}, lambda t: t.integer("a", minimum=0), "top.sub.a",
         "must be an integer, got True"),
        ({"a": 1.5}, lambda t: t.integer("a", minimum=0), "top.sub.a",
         "must be an integer, got 1.5"),
        ({"a": 0}, lambda t: t.integer("a", minimum=1), "top.sub.a", "must be at least 1, got 0"),
        ({"a": "1"}, lambda t: t.number("a"), "top.sub.a", "must be a number, got '1'"),
        ({"a": 0}, lambda t: t.number("a"), "top.sub.a", "must be a positive number, got 0"),
        ({"a": -1}, lambda t: t.number("a", allow_zero=True), "top.sub.a",
         "must be zero or more, got -1"),
        ({"a": ["x", 1]}, lambda t: t.strings("a"), "top.sub.a",
         "must be a non-empty list of strings, got ['x', 1]"),
        ({"a": "x"}, lambda t: t.strings("a", allow_empty=True), "top.sub.a",
         "must be a list of strings, got 'x'"),
        ({"a": "c"}, lambda t: t.choice("a", ("x", "y")), "top.sub.a",
         "must be one of x, y, got 'c'"),
        ({"a": "sap"}, lambda t: t.member("a", System), "top.sub.a",
         "must be one of erp, billing, crm, support, got 'sap'"),
        ({"a": ["crm", 3]}, lambda t: t.members("a", System), "top.sub.a",
         "must be one of erp, billing, crm, support, got 3"),
        ({"a": 3}, lambda t: t.table("a"), "top.sub.a", "must be a table, got int"),
        ({"a": {}}, lambda t: t.array("a"), "top.sub.a", "must be an array of tables ([[a]])"),
        ({"a": [{}, 2]}, lambda t: t.array("a"), "top.sub.a[1]", "must be a table, got int"),
        ({"a": {"b": {"zz": 1}}}, lambda t: t.table("a").table("b").only({"y", "x"}),
         "top.sub.a.b.zz", "unknown key; expected one of x, y"),
    ],
)  # fmt: skip
def test_getter_errors_name_key_expected_and_found(
    data: dict[str, Any], read: Callable[[PolicyTable], object], key: str, reason: str
) -> None:
    with pytest.raises(PolicyError) as caught:
        read(table(**data))
    assert (caught.value.file, caught.value.key, caught.value.reason) == ("p.toml", key, reason)


def test_getters_answer_checked_values_and_defaults() -> None:
    t = table(s="x", b=True, i=3, n=2, l=["a"], c="y", e="crm", es=["erp"], sub={"k": 1})
    assert t.string("s") == "x"
    assert t.string("absent", default="d") == "d"
    assert t.boolean("b") is True
    assert t.boolean("absent", default=False) is False
    assert t.integer("i", minimum=1) == 3
    assert t.number("n") == 2.0
    assert isinstance(t.number("n"), float)
    assert t.number("absent", default=0.5) == 0.5
    assert t.strings("l") == ["a"]
    assert t.strings("absent", allow_empty=True, default=[]) == []
    assert t.choice("c", ("x", "y")) == "y"
    assert t.member("e", System) is System.CRM
    assert t.members("es", System) == [System.ERP]
    assert t.members("absent", System, default=[System.CRM]) == [System.CRM]
    assert t.table("sub").integer("k", minimum=0) == 1
    assert t.table("absent", required=False).data == {}
    assert t.array("absent") == []
    assert "s" in t
    assert "absent" not in t


def test_an_empty_string_is_checked_even_when_a_default_is_given() -> None:
    with pytest.raises(PolicyError, match="must be a non-empty string"):
        table(s="").string("s", default="")


def test_root_table_keys_have_no_leading_dot() -> None:
    root = PolicyTable("p.toml", "", {"x": 1})
    with pytest.raises(PolicyError) as caught:
        root.only({"y"})
    assert caught.value.key == "x"
    assert str(caught.value) == "p.toml: x: unknown key; expected one of y"
