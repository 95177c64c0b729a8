"""policies/systems.toml: the shipped file loads; a broken one names file, key and reason."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from actors.connector import Endpoint
from canonical import System
from gateway.governance.errors import PolicyError
from gateway.governance.systems import load_systems_policy

SHIPPED = Path(__file__).parents[2] / "policies" / "systems.toml"


def test_shipped_policy_loads_with_sandbox_defaults() -> None:
    policy = load_systems_policy(SHIPPED, environ={})
    assert set(policy.systems) == set(System)
    ports = {s: policy[s].base_url for s in System}
    assert ports == {
        System.ERP: "http://127.0.0.1:8101",
        System.BILLING: "http://127.0.0.1:8102",
        System.CRM: "http://127.0.0.1:8103",
        System.SUPPORT: "http://127.0.0.1:8104",
    }
    assert policy[System.BILLING].rate.per_second == 25  # Stripe test mode
    assert dict(policy[System.ERP].credentials) == {"username": "sandbox", "password": "sandbox"}
    assert policy[System.CRM].credentials["access_token"] == "00DSANDBOX!crosswalk"
    endpoint = policy[System.SUPPORT].endpoint()
    assert isinstance(endpoint, Endpoint)
    assert endpoint.credentials["email"] == "agent@example.com"
    assert endpoint.timeout == policy[System.SUPPORT].timeout


def test_environment_overrides_base_urls() -> None:
    policy = load_systems_policy(SHIPPED, environ={"CROSSWALK_CRM_URL": "http://10.0.0.5:9000/"})
    assert policy[System.CRM].base_url == "http://10.0.0.5:9000"
    assert policy[System.ERP].base_url == "http://127.0.0.1:8101"


def test_bad_environment_url_names_the_variable() -> None:
    with pytest.raises(PolicyError) as caught:
        load_systems_policy(SHIPPED, environ={"CROSSWALK_ERP_URL": "127.0.0.1:8101"})
    assert caught.value.key == "CROSSWALK_ERP_URL"


def broken(tmp_path: Path, old: str, new: str) -> Path:
    text = SHIPPED.read_text()
    assert old in text, old
    path = tmp_path / "systems.toml"
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize(
    ("old", "new", "key", "reason"),
    [
        (
            "rate = { per_second = 50.0,",
            "rate = { per_second = -1,",
            "systems.erp.rate.per_second",
            "must be a positive number, got -1",
        ),
        (
            "workers = 16",
            'workers = "many"',
            "systems.erp.workers",
            "must be an integer, got 'many'",
        ),
        ("mailbox = 1000", "mailbox = 0", "systems.erp.mailbox", "must be at least 1, got 0"),
        (
            "timeout = 5.0",
            "timeout = 5.0\ntimeout_ms = 5",
            "systems.erp.timeout_ms",
            "unknown key",
        ),
        (
            "fail_max = 5,",
            "fail_max = 5, half_open = 1,",
            "systems.erp.breaker.half_open",
            "unknown key",
        ),
        (
            "success_threshold = 2,",
            "",
            "systems.erp.breaker.success_threshold",
            "missing",
        ),
        (
            'sandbox_credentials = { username = "sandbox", password = "sandbox" }',
            'sandbox_credentials = { username = "sandbox" }',
            "systems.erp.credentials_env",
            "no erp password: set the environment variable CROSSWALK_ERP_PASSWORD",
        ),
        (
            'base_url = "http://127.0.0.1:8101"',
            'base_url = "ftp://erp"',
            "systems.erp.base_url",
            "must be an http(s) URL",
        ),
        (
            "retry = { attempts = 3, base = 0.05, cap = 1.0 }",
            "retry = { attempts = 3, base = 0.5, cap = 0.1 }",
            "systems.erp.retry.cap",
            "must be at least retry.base",
        ),
        ("[systems.support]", "[systems.zendesk]", "systems.zendesk", "unknown key"),
    ],
)
def test_bad_values_name_file_key_and_reason(
    tmp_path: Path, old: str, new: str, key: str, reason: str
) -> None:
    path = broken(tmp_path, old, new)
    with pytest.raises(PolicyError) as caught:
        load_systems_policy(path, environ={})
    error = caught.value
    assert error.file == str(path)
    assert error.key == key
    assert reason in error.reason
    assert str(error).startswith(f"{path}: {key}: ")


def test_missing_system_is_named(tmp_path: Path) -> None:
    text = SHIPPED.read_text()
    path = tmp_path / "systems.toml"
    path.write_text(text[: text.index("[systems.support]")])
    with pytest.raises(PolicyError, match=re.escape("systems.support: missing")):
        load_systems_policy(path, environ={})


def test_unreadable_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="file not found"):
        load_systems_policy(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[systems\n")
    with pytest.raises(PolicyError, match="not valid TOML") as caught:
        load_systems_policy(bad)
    assert caught.value.file == str(bad)
