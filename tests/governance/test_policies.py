"""The shipped policies/ folder loads; a broken copy of any file names the file, key, reason."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from canonical import System
from crosswalk.cli import main
from gateway.governance.audit import AuditPolicy
from gateway.governance.errors import PolicyError
from gateway.governance.policies import check_policies, load_policies
from tests.support.paths import POLICIES as SHIPPED

FILES = (
    "systems.toml",
    "clients.toml",
    "webhooks.toml",
    "ownership.toml",
    "reference.toml",
    "outbox.toml",
    "readmodel.toml",
    "schedules.toml",
    "audit.toml",
    "slo.toml",
)
#: optional files: absent means the defaults
OPTIONAL = ("outbox.toml", "readmodel.toml", "schedules.toml", "audit.toml", "slo.toml")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    copy = tmp_path / "policies"
    shutil.copytree(SHIPPED, copy)
    return copy


def break_file(folder: Path, file: str, old: str, new: str) -> Path:
    path = folder / file
    text = path.read_text()
    assert old in text, f"{old!r} not in {file}"
    path.write_text(text.replace(old, new, 1))
    return path


def test_shipped_folder_loads() -> None:
    policies = load_policies(SHIPPED)
    assert check_policies(SHIPPED) == []
    assert set(policies.systems.systems) == set(System)
    assert set(policies.webhooks.systems) == set(System)
    assert set(policies.clients.clients) == {"demo-portal", "demo-widget", "demo-ops"}
    assert policies.ownership.owner("segment") is System.CRM
    assert policies.reference.products["CW-CORE"].interval == "month"
    assert policies.outbox.dispatcher.workers == 64


def test_clients_name_the_system_they_speak_for() -> None:
    clients = load_policies(SHIPPED).clients.clients
    assert clients["demo-widget"].system is System.CRM
    assert clients["demo-portal"].system is None
    assert clients["demo-ops"].system is None


def test_shipped_folder_passes_the_cli_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policies", "check", "--policies", str(SHIPPED)]) == 0
    assert "are valid" in capsys.readouterr().out


BROKEN = [
    ("systems.toml", "workers = 16", 'workers = "many"', "systems.erp.workers",
     "must be an integer, got 'many'"),
    ("systems.toml", 'base_url = "http://127.0.0.1:8101"', 'base_url = "http://[::1"',
     "systems.erp.base_url", "must be an http(s) URL like http://127.0.0.1:8101, got"),
    ("systems.toml", "[systems.support]", "[systems.zendesk]", "systems.zendesk",
     "unknown key; expected one of billing, crm, erp, support"),
    ("clients.toml", 'system = "crm"', 'system = "salesforce"', "clients[1].system",
     "must be one of erp, billing, crm, support, got 'salesforce'"),
    ("clients.toml", "graphiql = true", 'graphiql = "yes"', "clients[0].graphiql",
     "must be true or false, got 'yes'"),
    ("clients.toml", "max_batch = 10", "max_batch = 0", "limits.max_batch",
     "must be at least 1, got 0"),
    ("clients.toml", 'id = "demo-ops"', 'id = "demo-portal"', "clients[2].id",
     "duplicate client id 'demo-portal'"),
    ("clients.toml", "requests_per_minute = 1000000", "requests_per_minute = 0",
     "clients[0].requests_per_minute", "must be at least 1, got 0"),
    ("clients.toml", "requests_per_minute = 1000000", 'requests_per_minute = "lots"',
     "clients[0].requests_per_minute", "must be an integer, got 'lots'"),
    ("clients.toml", "cost_per_minute = 100000000", "cost_per_minute = 100",
     "clients[0].cost_per_minute", "must be at least limits.max_cost (5000)"),
    ("clients.toml", "requests_per_minute = 1000000", "requests_per_second = 5",
     "clients[0].requests_per_second", "unknown key"),
    ("clients.toml", 'access = "ops"', 'access = "public"', "ops.access",
     "must be one of ops, open, got 'public'"),
    ("clients.toml", 'access = "ops"', 'access = "ops"\nport = 70000', "ops.port",
     "must be a TCP port (1-65535), got 70000"),
    ("clients.toml", "body_seconds = 10", "body_seconds = 0", "limits.body_seconds",
     "must be at least 1, got 0"),
    ("webhooks.toml", 'scheme = "stripe"', 'scheme = "hmac"', "webhooks.billing.scheme",
     "must be one of bearer, stripe, zendesk, got 'hmac'"),
    ("webhooks.toml", "tolerance = 300", "tolerance = -5", "webhooks.billing.tolerance",
     "must be a positive number, got -5"),
    ("webhooks.toml", "[webhooks.support]", "[webhooks.zendesk]", "webhooks.zendesk",
     "unknown key"),
    ("ownership.toml", 'segment = "crm"', 'segment = "hubspot"', "customer.segment",
     "must be one of erp, billing, crm, support, got 'hubspot'"),
    ("ownership.toml", "[customer]", '[customer]\nshoe_size = "erp"', "customer.shoe_size",
     "not a canonical customer field"),
    ("ownership.toml", 'segment = "crm"\n', "", "customer", "no owner for segment"),
    ("ownership.toml", 'order = ["erp", "crm",', 'order = ["erp", "erp",', "fallback.order",
     "names a system twice"),
    ("reference.toml", "days = 14,", "days = -1,", "payment_terms.NT14.days",
     "must be at least 0, got -1"),
    ("reference.toml", 'interval = "month"', 'interval = "week"', "products.CW-CORE.interval",
     "must be one of month, year, got 'week'"),
    ("reference.toml", 'tiers = ["standard", "premium", "enterprise"]', "tiers = []",
     "sla.tiers", "must be a non-empty list of strings, got []"),
    ("reference.toml", 'tax_id_example = "DE123456789"', 'tax_id_example = "DE1"',
     "countries.DE.tax_id_example", "does not match tax_id"),
    ("reference.toml", "tax_id = '^DE[0-9]{9}$'", "tax_id = 'a{4294967296}'",
     "countries.DE.tax_id", "not a valid regular expression"),
    ("reference.toml", 'name = "Germany"\n', "", "countries.DE.name", "missing"),
    ("outbox.toml", "workers = 64", "workers = 0", "dispatcher.workers",
     "must be at least 1, got 0"),
    ("outbox.toml", "ttl_hours = 24", 'ttl_hours = "a day"', "idempotency.ttl_hours",
     "must be a number, got 'a day'"),
    ("outbox.toml", "[dispatcher]", "[dispatcher]\nspeed = 1", "dispatcher.speed",
     "unknown key"),
    ("outbox.toml", "delivery_timeout = 10.0", "delivery_timeout = 40.0",
     "dispatcher.lease_seconds", "must exceed delivery_timeout"),
    ("readmodel.toml", 'cases = "30s"', 'cases = "soon"', "freshness.support.cases",
     "must be seconds or a duration like '60s', '5m', got 'soon'"),
    ("readmodel.toml", 'cases = "30s"', 'tickets = "30s"', "freshness.support.tickets",
     "unknown key"),
    ("readmodel.toml", "interactive = 0.5", "interactive = 0.9", "quota.interactive",
     "the shares add up to 1.40; they may not exceed 1"),
    ("readmodel.toml", "catch_up = 0.2", "catch_up = 0", "quota.catch_up",
     "must be more than zero"),
    ("readmodel.toml", "page_size = 100", "page_size = 5000", "catch_up.page_size",
     "must be at most 1000"),
    ("schedules.toml", "inbox_days = 7", "inbox_days = 1", "retention.inbox_days",
     "must be at least 3"),
    ("schedules.toml", "repair = false", 'repair = "no"', "reconcile.repair",
     "must be true or false, got 'no'"),
    ("audit.toml", "retention_days = 90", "retention_days = 0", "retention_days",
     "must be at least 1, got 0"),
    ("audit.toml", "batch = 500", 'batch = "lots"', "batch", "must be an integer, got 'lots'"),
    ("audit.toml", "queue = 10000", "queue = 10000\nkeep_forever = true", "keep_forever",
     "unknown key"),
    ("audit.toml", "purge_interval = 3600.0", "purge_interval = -1.0", "purge_interval",
     "must be a positive number"),
    ("slo.toml", "availability = 0.995", "availability = 1.5", "systems.erp.availability",
     "must be a share below 1"),
    ("slo.toml", "[systems.erp]", "[systems.sap]", "systems.sap",
     "unknown key; expected one of billing, crm, erp, support"),
    ("slo.toml", "sync_lag_seconds = 60", "sync_lag_seconds = -1",
     "systems.erp.sync_lag_seconds", "must be a positive number"),
    ("slo.toml", "success_rate = 0.99", "success_rate = 0.99\nspeed = 1",
     "flows.onboardCustomer.speed", "unknown key"),
    ("slo.toml", "max_findings = 0", "max_findings = -1", "data_consistency.max_findings",
     "must be at least 0"),
]  # fmt: skip


@pytest.mark.parametrize(("file", "old", "new", "key", "reason"), BROKEN)
def test_broken_file_is_refused_with_file_key_and_reason(
    folder: Path, file: str, old: str, new: str, key: str, reason: str
) -> None:
    path = break_file(folder, file, old, new)
    with pytest.raises(PolicyError) as caught:
        load_policies(folder)
    error = caught.value
    assert (error.file, error.key) == (str(path), key)
    assert reason in error.reason
    assert str(error).startswith(f"{path}: {key}: ")
    assert [(p.file, p.key, p.reason) for p in check_policies(folder)] == [
        (error.file, error.key, error.reason)
    ]


def test_unreadable_issuer_key_file_is_named(folder: Path) -> None:
    (folder / "login.pem").write_bytes(b"\xff\xfe not a key")
    path = folder / "clients.toml"
    issuer = (
        '\n[[issuers]]\nissuer = "https://login.example.test/"\nalgorithm = "RS256"\n'
        'public_key_file = "login.pem"\naudience = "crosswalk"\n'
    )
    path.write_text(path.read_text() + issuer)
    (problem,) = check_policies(folder)
    assert (problem.file, problem.key) == (str(path), "issuers[0].public_key_file")
    assert problem.reason.startswith(f"cannot read {folder / 'login.pem'}: ")


@pytest.mark.parametrize("file", FILES)
def test_invalid_toml_names_the_file(folder: Path, file: str) -> None:
    path = folder / file
    path.write_text("[broken\n")
    (problem,) = check_policies(folder)
    assert (problem.file, problem.key) == (str(path), "")
    assert problem.reason.startswith("not valid TOML")


@pytest.mark.parametrize("file", FILES)
def test_undecodable_file_names_the_file(folder: Path, file: str) -> None:
    path = folder / file
    path.write_bytes(b"name = '\xff'\n")
    (problem,) = check_policies(folder)
    assert (problem.file, problem.key) == (str(path), "")
    assert "not UTF-8" in problem.reason


@pytest.mark.parametrize("file", [f for f in FILES if f not in OPTIONAL])
def test_missing_file_is_named(folder: Path, file: str) -> None:
    (folder / file).unlink()
    (problem,) = check_policies(folder)
    assert (problem.file, problem.key) == (str(folder / file), "")
    assert problem.reason.startswith("file not found; ")


def test_missing_optional_files_mean_the_defaults(folder: Path) -> None:
    for file in OPTIONAL:
        (folder / file).unlink()
    loaded = load_policies(folder)
    assert loaded.outbox.dispatcher.workers == 64
    assert loaded.readmodel.catch_up_interval == 15.0
    assert loaded.schedules.retention.inbox_days == 7.0


def test_missing_audit_file_means_the_defaults(folder: Path) -> None:
    (folder / "audit.toml").unlink()
    audit = load_policies(folder).audit
    assert (audit.retention_days, audit.batch) == (90, 500)


def test_missing_slo_file_means_no_objectives(folder: Path) -> None:
    (folder / "slo.toml").unlink()
    slo = load_policies(folder).slo
    assert (slo.systems, slo.flows, slo.max_findings) == ({}, {}, None)


def test_shipped_slo_policy_has_objectives_for_every_system() -> None:
    slo = load_policies(SHIPPED).slo
    assert set(slo.systems) == set(System)
    assert slo.systems[System.ERP].availability == 0.995
    assert slo.flows["onboardCustomer"].success_rate == 0.99


def test_shipped_audit_policy_is_the_defaults() -> None:
    assert load_policies(SHIPPED).audit == AuditPolicy()


def test_unreadable_file_is_named(folder: Path) -> None:
    (folder / "ownership.toml").unlink()
    (folder / "ownership.toml").mkdir()  # reading a directory fails with an OSError
    (problem,) = check_policies(folder)
    assert problem.file == str(folder / "ownership.toml")
    assert problem.reason.startswith("cannot be read: ")


def test_check_reports_every_broken_file(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for file in FILES:
        (folder / file).write_text("mystery = 1\n")
    problems = check_policies(folder)
    assert [(p.file, p.key) for p in problems] == [(str(folder / f), "mystery") for f in FILES]
    assert all(p.reason.startswith("unknown key; expected one of ") for p in problems)
    assert main(["policies", "check", "--policies", str(folder)]) == 1
    err = capsys.readouterr().err
    for file in FILES:
        assert f"crosswalk: {folder / file}: mystery: unknown key" in err
