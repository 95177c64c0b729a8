"""Profiles: where secrets may come from.

``sandbox`` (``crosswalk up``, tests, benchmarks): the demo secrets committed in
``policies/`` (``sandbox_secret`` in webhooks.toml, ``sandbox_credentials`` in
systems.toml) fill in whatever the environment does not set; start-up says so loudly.

``production`` (``crosswalk serve`` by default, against real systems): every webhook
secret and vendor credential comes from its environment variable (``secret_env``,
``credentials_env``) or from a value the deployment's own policy file holds
(``secret``, ``credentials``); the committed demo values are never used, and a missing
one stops start-up naming the variable to set.

``CROSSWALK_PROFILE`` sets the profile of ``crosswalk serve`` and ``crosswalk policies
check`` (flag ``--profile``).
"""

from __future__ import annotations

from typing import Final

__all__ = ["PRODUCTION", "PROFILES", "SANDBOX", "SANDBOX_WARNING"]

SANDBOX: Final = "sandbox"
PRODUCTION: Final = "production"
PROFILES: Final = (SANDBOX, PRODUCTION)

SANDBOX_WARNING: Final = (
    "SANDBOX PROFILE: webhook secrets and vendor credentials fall back to the demo values "
    "committed in policies/ (sandbox_secret, sandbox_credentials). Never point this at "
    "real systems: run `crosswalk serve` (the production profile) with the secrets in "
    "the environment instead."
)
