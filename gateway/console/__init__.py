"""The operations console at ``/console``: a static page, its script and stylesheet,
served from the package (no CDN, no build step), plus two small endpoints it needs.

- ``GET /console`` and ``GET /console/{console.js,console.css}``: the files in ``static/``.
- ``GET /console/config.json``: the sandbox systems' base URLs when the gateway runs in
  the sandbox profile, else ``{"sandbox": null}`` (the page then hides its chaos panel).
- ``POST /console/chaos/{system}``: the chaos patch passed on to that sandbox's
  ``POST /_sandbox/chaos`` (sandbox profile only, ops scope). The sandboxes send no CORS
  headers, so the page cannot post to them itself.

Everything else the page shows comes from ``/graphql`` with the key the operator signs
in with, so it shows exactly what that key's scopes allow.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib import resources

import aiohttp
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from canonical import System
from gateway.governance.policies import Policies
from gateway.governance.profiles import SANDBOX
from gateway.settings import Settings

__all__ = ["ASSETS", "console_routes"]

#: file name -> media type; the only files ``/console/`` serves
ASSETS: dict[str, str] = {
    "console.html": "text/html; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}
#: how long a chaos call to a sandbox may take
_CHAOS_TIMEOUT = 5.0


@cache
def _read(name: str) -> bytes:
    return resources.files("gateway.console").joinpath("static", name).read_bytes()


def _json(body: object, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def console_routes(
    settings: Settings,
    policies: Policies,
    refusal: Callable[[Request], Response | None],
) -> list[Route]:
    """The console's routes; ``refusal`` is the ops access check of ``/metrics``."""
    sandbox = settings.profile == SANDBOX
    urls = {str(s): policies.systems.systems[s].base_url for s in System} if sandbox else None

    async def page(request: Request) -> Response:
        return Response(_read("console.html"), media_type=ASSETS["console.html"])

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ASSETS or name == "console.html":
            return Response("Not found", status_code=404, media_type="text/plain")
        return Response(_read(name), media_type=ASSETS[name])

    async def config(request: Request) -> Response:
        return _json({"sandbox": urls})

    async def chaos(request: Request) -> Response:
        if urls is None:
            return _json({"error": "chaos is only available in the sandbox profile"}, 404)
        refused = refusal(request)
        if refused is not None:
            return refused
        system = request.path_params["system"]
        if system not in urls:
            return _json({"error": f"unknown system {system!r}; one of {', '.join(urls)}"}, 404)
        body = await request.body()
        timeout = aiohttp.ClientTimeout(total=_CHAOS_TIMEOUT)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.post(
                    f"{urls[system]}/_sandbox/chaos",
                    data=body,
                    headers={"Content-Type": "application/json"},
                ) as answer,
            ):
                return Response(
                    await answer.read(), status_code=answer.status, media_type="application/json"
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            return _json({"error": f"the {system} sandbox did not answer: {exc!r}"}, 502)

    return [
        Route("/console", page, methods=["GET"]),
        Route("/console/config.json", config, methods=["GET"]),
        Route("/console/chaos/{system}", chaos, methods=["POST"]),
        Route("/console/{name}", asset, methods=["GET"]),
    ]
