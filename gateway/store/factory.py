"""``open_store(url)``: pick the backend from the URL's scheme.

``sqlite:///relative/path.db`` and ``sqlite:////absolute/path.db`` (three slashes, then
the path, as SQLAlchemy writes it). Options ride in the query string
(``?busy_timeout=5&readers=4``) or as keyword arguments, which win.

``postgresql://user:password@host:5432/database`` (or ``postgres://``): the PostgreSQL
backend; its options ``?pool=20&timeout=10`` (the largest connection pool, seconds to wait
for a connection); any other query parameter goes to the driver as libpq would take it
(``sslmode=require``, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from urllib.parse import parse_qsl

from gateway.store.errors import UnsupportedStoreURL
from gateway.store.interface import Store
from gateway.store.records import utcnow

__all__ = ["open_store"]

_OPTION_TYPES: dict[str, type[float] | type[int]] = {"busy_timeout": float, "readers": int}
_PG_OPTION_TYPES: dict[str, type[float] | type[int]] = {"pool": int, "timeout": float}


def open_store(
    url: str,
    *,
    clock: Callable[[], datetime] = utcnow,
    busy_timeout: float | None = None,
    readers: int | None = None,
) -> Store:
    """An unopened store for ``url``; use it as ``async with open_store(url) as store:``."""
    scheme, _, rest = url.partition("://")
    if scheme == "sqlite":
        from gateway.store.sqlite.store import SQLiteStore

        if not rest.startswith("/"):
            raise UnsupportedStoreURL(
                f"store URL {url!r}: write sqlite:///path/to/file.db (three slashes)"
            )
        path, _, query = rest[1:].partition("?")
        options = _options(url, query, _OPTION_TYPES)
        if busy_timeout is not None:
            options["busy_timeout"] = busy_timeout
        if readers is not None:
            options["readers"] = readers
        return SQLiteStore(
            path,
            clock=clock,
            busy_timeout=float(options.get("busy_timeout", 10.0)),
            readers=int(options.get("readers", 2)),
        )
    if scheme in ("postgres", "postgresql"):
        from gateway.store.postgres import PostgresStore

        base, _, query = url.partition("?")
        ours = {k: v for k, v in parse_qsl(query) if k in _PG_OPTION_TYPES}
        theirs = "&".join(f"{k}={v}" for k, v in parse_qsl(query) if k not in _PG_OPTION_TYPES)
        pg = _options(url, "&".join(f"{k}={v}" for k, v in ours.items()), _PG_OPTION_TYPES)
        return PostgresStore(
            f"{base}?{theirs}" if theirs else base,
            clock=clock,
            pool=int(pg.get("pool", 20)),
            timeout=float(pg.get("timeout", 10.0)),
        )
    raise UnsupportedStoreURL(
        f"store URL {url!r}: unknown scheme {scheme!r}; expected sqlite:///path/to/file.db "
        "or postgresql://user@host/database"
    )


def _options(
    url: str, query: str, types: dict[str, type[float] | type[int]]
) -> dict[str, float | int]:
    options: dict[str, float | int] = {}
    for name, value in parse_qsl(query, strict_parsing=False):
        kind = types.get(name)
        if kind is None:
            raise UnsupportedStoreURL(
                f"store URL {url!r}: unknown option {name!r}; known: {', '.join(types)}"
            )
        try:
            options[name] = kind(value)
        except ValueError:
            raise UnsupportedStoreURL(
                f"store URL {url!r}: option {name}={value!r} is not a {kind.__name__}"
            ) from None
    return options
