"""Secrets by profile: production never falls back to the demo secrets in policies/."""

from __future__ import annotations

from pathlib import Path

import pytest

from crosswalk.cli import main
from gateway.governance.errors import PolicyError
from gateway.governance.policies import check_policies, load_policies
from tests.servers import free_port
from tests.support.paths import POLICIES as SHIPPED

SECRETS = {
    "CROSSWALK_ERP_WEBHOOK_SECRET": "erp-production-secret",
    "CROSSWALK_BILLING_WEBHOOK_SECRET": "whsec_production",
    "CROSSWALK_CRM_WEBHOOK_SECRET": "crm-production-secret",
    "CROSSWALK_SUPPORT_WEBHOOK_SECRET": "support-production-secret",
    "CROSSWALK_ERP_USERNAME": "COMM_USER",
    "CROSSWALK_ERP_PASSWORD": "erp-password",
    "CROSSWALK_BILLING_API_KEY": "sk_live_production",
    "CROSSWALK_CRM_ACCESS_TOKEN": "00Dprod!token",
    "CROSSWALK_SUPPORT_EMAIL": "ops@example.com",
    "CROSSWALK_SUPPORT_TOKEN": "zendesk-token",
    "CROSSWALK_SUPPORT_SUBDOMAIN": "example",
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SECRETS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("CROSSWALK_PROFILE", raising=False)


def test_production_refuses_the_committed_demo_secrets() -> None:
    problems = {
        (Path(p.file).name, p.key): p.reason for p in check_policies(SHIPPED, profile="production")
    }
    assert set(problems) == {
        ("systems.toml", "systems.erp.credentials_env"),
        ("webhooks.toml", "webhooks.erp.secret_env"),
    }  # the first problem of each file
    assert "CROSSWALK_ERP_PASSWORD" in problems[("systems.toml", "systems.erp.credentials_env")]
    assert "CROSSWALK_ERP_USERNAME" in problems[("systems.toml", "systems.erp.credentials_env")]
    webhook = problems[("webhooks.toml", "webhooks.erp.secret_env")]
    assert "set the environment variable CROSSWALK_ERP_WEBHOOK_SECRET" in webhook
    with pytest.raises(PolicyError):
        load_policies(SHIPPED, profile="production")


def test_production_reads_every_secret_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    policies = load_policies(SHIPPED, profile="production")
    secrets = {s.value: w.secret for s, w in policies.webhooks.systems.items()}
    assert secrets["billing"] == "whsec_production"
    assert all(
        "sandbox" not in v
        for p in policies.systems.systems.values()
        for v in p.credentials.values()
    )


def test_sandbox_profile_uses_the_demo_secrets() -> None:
    policies = load_policies(SHIPPED, profile="sandbox")
    assert {w.secret for w in policies.webhooks.systems.values()} >= {"whsec_crosswalk_sandbox"}


def test_serve_refuses_to_start_without_its_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "serve",
            "--port",
            str(free_port()),
            "--policies",
            str(SHIPPED),
            "--var-dir",
            str(tmp_path),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "CROSSWALK_ERP_" in err
    assert "crosswalk up" in err


def test_policies_check_takes_a_profile(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policies", "check", "--policies", str(SHIPPED)]) == 0
    assert main(["policies", "check", "--policies", str(SHIPPED), "--profile", "production"]) == 1
    assert "CROSSWALK_ERP_WEBHOOK_SECRET" in capsys.readouterr().err
