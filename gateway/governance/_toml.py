"""Reading a policy file and checking its tables: the one place policy values are typed.

``read_policy(path)`` turns a missing, unreadable or malformed file into
``PolicyError(file, "", reason)`` and answers the document as a ``PolicyTable``. A
``PolicyTable`` is one TOML table plus where it sits (file and dotted key); its getters
check the type and range of one value and raise ``PolicyError(file, dotted key, reason)``
with what was expected and what was found, e.g.
``policies/systems.toml: systems.erp.rate.per_second: must be a positive number, got -1``.

A getter without ``default`` treats an absent key as an error, so a typo in a required
key stops start-up instead of silently using a default; ``only`` refuses unknown keys.
"""

from __future__ import annotations

import enum
import math
import tomllib
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

from gateway.governance.errors import PolicyError

__all__ = ["MISSING", "PolicyTable", "read_policy"]

E = TypeVar("E", bound=enum.Enum)


class _Missing(enum.Enum):
    """The "no default given" sentinel (an enum so type checkers can narrow on it)."""

    MISSING = enum.auto()


MISSING: Final = _Missing.MISSING
_NoDefault = Literal[_Missing.MISSING]


def read_policy(path: Path | str, *, if_missing: str | None) -> PolicyTable:
    """Parse the TOML file at ``path`` into its root table.

    ``if_missing`` is the reason a missing file is refused with (say how to create it),
    or ``None`` when a missing file is allowed and means "every default" (an empty table).
    """
    file = str(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        if if_missing is None:
            return PolicyTable(file, "", {})
        raise PolicyError(file, "", f"file not found; {if_missing}") from None
    except OSError as exc:
        raise PolicyError(file, "", f"cannot be read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(file, "", f"not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise PolicyError(file, "", f"not valid TOML: not UTF-8 text ({exc.reason})") from None
    return PolicyTable(file, "", data)


class PolicyTable:
    """One table of a policy file: typed getters whose errors name the file and dotted key."""

    __slots__ = ("at", "data", "file")

    def __init__(self, file: str, at: str, data: dict[str, Any]) -> None:
        self.file = file
        self.at = at  # dotted key of this table; "" for the document itself
        self.data = data

    # ------------------------------------------------------------- plumbing

    def key(self, name: str) -> str:
        """The dotted key of ``name`` in this table, as error messages show it."""
        return f"{self.at}.{name}" if self.at else name

    def fail(self, name: str, reason: str) -> PolicyError:
        """An error for ``name`` in this table (``name=""``: the table itself)."""
        return PolicyError(self.file, self.key(name) if name else self.at, reason)

    def __contains__(self, name: object) -> bool:
        return name in self.data

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def get(self, name: str, default: Any = None) -> Any:
        """The raw value, unchecked: for values with a shape of their own."""
        return self.data.get(name, default)

    def _value(self, name: str, default: Any) -> Any:
        if name in self.data:
            return self.data[name]
        if default is MISSING:
            raise self.fail(name, "missing; this key is required")
        return default

    def only(self, allowed: Collection[str]) -> None:
        """Refuse any key not in ``allowed``, naming the first unknown one."""
        for name in self.data:
            if name not in allowed:
                raise self.fail(name, f"unknown key; expected one of {', '.join(sorted(allowed))}")

    # ------------------------------------------------------------- tables

    def table(self, name: str, *, required: bool = True) -> PolicyTable:
        """The sub-table ``name``; when not ``required`` an absent one reads as empty."""
        value = self._value(name, MISSING if required else {})
        if not isinstance(value, dict):
            raise self.fail(name, f"must be a table, got {type(value).__name__}")
        return PolicyTable(self.file, self.key(name), value)

    def per_member(self, kind: type[E]) -> dict[E, PolicyTable]:
        """One sub-table per member of enum ``kind``, keyed by its value: none absent, no other."""
        self.only({str(member.value) for member in kind})
        return {member: self.table(str(member.value)) for member in kind}

    def array(self, name: str) -> list[PolicyTable]:
        """The array of tables ``[[name]]`` (absent: empty), each keyed ``name[index]``."""
        value = self._value(name, [])
        if not isinstance(value, list):
            raise self.fail(name, f"must be an array of tables ([[{name}]])")
        tables = []
        for index, item in enumerate(value):
            at = f"{self.key(name)}[{index}]"
            if not isinstance(item, dict):
                raise PolicyError(self.file, at, f"must be a table, got {type(item).__name__}")
            tables.append(PolicyTable(self.file, at, item))
        return tables

    # ------------------------------------------------------------- values

    def string(self, name: str, default: str | _NoDefault = MISSING) -> str:
        if name not in self.data and not isinstance(default, _Missing):
            return default
        value = self._value(name, MISSING)
        if not isinstance(value, str) or not value:
            raise self.fail(name, f"must be a non-empty string, got {value!r}")
        return value

    def boolean(self, name: str, default: bool | _NoDefault = MISSING) -> bool:
        value = self._value(name, default)
        if not isinstance(value, bool):
            raise self.fail(name, f"must be true or false, got {value!r}")
        return value

    def integer(self, name: str, *, minimum: int, default: int | _NoDefault = MISSING) -> int:
        value = self._value(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(name, f"must be an integer, got {value!r}")
        if value < minimum:
            raise self.fail(name, f"must be at least {minimum}, got {value}")
        return int(value)

    def number(
        self, name: str, *, allow_zero: bool = False, default: float | _NoDefault = MISSING
    ) -> float:
        """A positive number (or zero or more with ``allow_zero``); integers are accepted."""
        value = self._value(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(name, f"must be a number, got {value!r}")
        if not math.isfinite(value):
            raise self.fail(name, f"must be a finite number, got {value!r}")
        if allow_zero and value < 0:
            raise self.fail(name, f"must be zero or more, got {value}")
        if not allow_zero and not value > 0:
            raise self.fail(name, f"must be a positive number, got {value}")
        return float(value)

    def strings(
        self, name: str, *, allow_empty: bool = False, default: list[str] | _NoDefault = MISSING
    ) -> list[str]:
        """A list of non-empty strings (an empty list only with ``allow_empty``)."""
        value = self._value(name, default)
        ok = isinstance(value, list) and all(isinstance(v, str) and v for v in value)
        if not ok or not (value or allow_empty):
            kind = "list of strings" if allow_empty else "non-empty list of strings"
            raise self.fail(name, f"must be a {kind}, got {value!r}")
        return list(value)

    def choice(self, name: str, allowed: Collection[str]) -> str:
        """A string that must be one of ``allowed``."""
        value = self.string(name)
        if value not in allowed:
            raise self.fail(name, f"must be one of {', '.join(allowed)}, got {value!r}")
        return value

    def member(self, name: str, kind: type[E]) -> E:
        """The member of enum ``kind`` whose value is the string at ``name``."""
        return self._member(name, self._value(name, MISSING), kind)

    def members(self, name: str, kind: type[E], default: list[E] | _NoDefault = MISSING) -> list[E]:
        """A list of members of enum ``kind``, given by value."""
        if name not in self.data and not isinstance(default, _Missing):
            return list(default)
        value = self._value(name, MISSING)
        if not isinstance(value, list):
            raise self.fail(name, f"must be a list of {_values(kind)}, got {value!r}")
        return [self._member(name, item, kind) for item in value]

    def _member(self, name: str, value: Any, kind: type[E]) -> E:
        for member in kind:
            if isinstance(value, str) and member.value == value:
                return member
        raise self.fail(name, f"must be one of {_values(kind)}, got {value!r}")


def _values(kind: type[enum.Enum]) -> str:
    return ", ".join(str(m.value) for m in kind)
