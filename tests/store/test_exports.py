"""The package's public surface: everything public in its modules, once."""

from __future__ import annotations

import gateway.store
from gateway.store import errors, factory, interface, notify, records


def test_package_exports_every_public_name_sorted() -> None:
    exported = set(gateway.store.__all__)
    for module in (errors, factory, interface, notify, records):
        missing = {name for name in module.__all__ if name not in ("JSON", "Unset")} - exported
        assert not missing, f"{module.__name__} names not exported: {missing}"
    assert all(hasattr(gateway.store, name) for name in gateway.store.__all__)
    assert len(exported) == len(gateway.store.__all__)  # no duplicates (ruff checks the order)
