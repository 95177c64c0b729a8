"""Every command the README shows works, run as a reader would against `crosswalk up`.

The README's fenced ``sh`` blocks are parsed into commands (continuation lines joined,
comments dropped) and each is run in order against one stack started on free ports, the
README's default ports rewritten to the stack's. A few commands are not run as written;
``NOT_AS_WRITTEN`` says how each is run instead and why. A command the test does not
know how to run fails the test, so a new README command needs a line here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.paths import ROOT
from tests.support.upstack import SYSTEMS, UpStack, running_up

pytestmark = [pytest.mark.slow]

README = ROOT / "README.md"

#: command prefix -> (how it is run instead, why)
NOT_AS_WRITTEN: dict[str, tuple[str | None, str]] = {
    "./scripts/up": (None, "starts the stack this test already runs through `crosswalk up`"),
    "./scripts/test": (None, "is the command running this test"),
    # Beyond one machine: tests/e2e/test_readme_replicas.py runs these as written
    "nats-server -js": (None, "NATS runs for the tests already (.ci/run starts it)"),
    "createdb -h 127.0.0.1": (None, "the replicas' database: tests/e2e/test_readme_replicas.py"),
    "crosswalk sandbox &": (None, "the replicas' sandbox: tests/e2e/test_readme_replicas.py"),
    "crosswalk serve --profile sandbox --port 800": (None, "tests/e2e/test_readme_replicas.py"),
    ".venv/bin/python scripts/bench_": (
        "--help",
        "a benchmark runs for minutes: checked it starts",
    ),
}

#: CLI commands whose documented answer is a non-zero exit
EXPECTED_EXIT = {
    "crosswalk reconcile": 1,  # the demo world plants drift: found, exit 1
}

DEFAULT_PORTS = {"8000": "gw", "8101": "erp", "8102": "billing", "8103": "crm", "8104": "support"}


def readme_commands(text: str) -> list[str]:
    """The commands in the README's ``sh`` blocks, in order."""
    commands: list[str] = []
    for block in re.findall(r"^```sh\n(.*?)^```", text, flags=re.S | re.M):
        pending = ""
        for raw in block.splitlines():
            line = raw.rstrip()
            if not pending and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            commands.append(_strip_comment(pending + line).strip())
            pending = ""
    return commands


def _strip_comment(line: str) -> str:
    """Drop a trailing comment: the README sets them off with two spaces and ``#``."""
    cut = line.find("  #")
    return line[:cut] if cut >= 0 else line


def _rewrite_ports(command: str, stack: UpStack) -> str:
    for port, name in DEFAULT_PORTS.items():
        command = re.sub(
            rf"(localhost|127\.0\.0\.1):{port}\b", rf"\g<1>:{stack.ports[name]}", command
        )
    return command


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpStack]:
    with running_up(tmp_path_factory.mktemp("readme")) as up:
        yield up


def test_readme_has_commands() -> None:
    commands = readme_commands(README.read_text())
    assert any(c.startswith("curl") for c in commands)
    assert any(c.startswith("crosswalk") for c in commands)


def test_every_readme_command_works(stack: UpStack) -> None:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "CROSSWALK_STORE": f"sqlite:///{stack.var_dir / 'crosswalk.db'}",
        # commands that talk to the systems themselves (reconcile) find the stack's
        "CROSSWALK_VAR": str(stack.var_dir),
        **{f"CROSSWALK_{s.upper()}_URL": f"http://127.0.0.1:{stack.ports[s]}" for s in SYSTEMS},
    }
    ran = 0
    for command in readme_commands(README.read_text()):
        instead = next((v for k, v in NOT_AS_WRITTEN.items() if command.startswith(k)), None)
        if instead is not None:
            how, _why = instead
            if how is None:
                continue
            command = f"{command.split()[0]} {command.split()[1]} {how}"
        if command.startswith("curl "):
            # fail on an HTTP error status, show the body when it does
            command = "curl --fail-with-body -sS " + command[len("curl ") :]
        elif command.startswith(".venv/bin/python scripts/fuzz_graphql.py"):
            command += " --count 40"
        elif not command.startswith(("crosswalk ", ".venv/bin/python ")):
            pytest.fail(f"the README shows a command this test does not know: {command!r}")
        command = _rewrite_ports(command, stack)
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        expected = next((c for k, c in EXPECTED_EXIT.items() if command.startswith(k)), 0)
        output = done.stdout + done.stderr
        assert done.returncode == expected, f"{command}\nexit {done.returncode}\n{output}"
        assert "Traceback" not in output, f"{command}\n{output}"
        ran += 1
    assert ran >= 15
