"""Packaging metadata: current forms only, and the package carries its own web assets."""

from __future__ import annotations

import tomllib

from tests.support.paths import ROOT


def test_license_is_an_spdx_expression() -> None:
    # a TOML table here is deprecated by the packaging metadata spec and warns on build
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"


def test_graphiql_assets_ship_as_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert config["tool"]["setuptools"]["package-data"]["gateway.graphql"] == ["static/*"]
    static = ROOT / "gateway" / "graphql" / "static"
    for name in ("graphiql.html", "graphiql.min.js", "react.production.min.js"):
        assert (static / name).is_file(), name


def test_console_files_ship_as_package_data() -> None:
    from gateway.console import ASSETS

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert config["tool"]["setuptools"]["package-data"]["gateway.console"] == ["static/*"]
    static = ROOT / "gateway" / "console" / "static"
    for name in ASSETS:
        assert (static / name).is_file(), name
