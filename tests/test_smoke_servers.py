import httpx
import pytest
from starlette.responses import JSONResponse
from starlette.routing import Route

from sandbox.app import SandboxConfig, build_app, state_of
from tests.servers import serve

pytestmark = pytest.mark.anyio


class _Dialect:
    system = "erp"

    def error_response(self, status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status)

    def throttle_response(self) -> JSONResponse:
        return JSONResponse({"error": "slow down"}, 429)


async def test_sandbox_base_app_seeds_and_applies_chaos(tmp_path):
    async def seed(state):
        await state.store.put_many("thing", [(c.bp, {"n": c.name}) for c in state.demo.companies])

    async def things(request):
        return JSONResponse({"n": state_of(request).store.count("thing")})

    config = SandboxConfig.for_system("erp", data_dir=tmp_path, gateway_url=None, customers=20)
    app = build_app(
        config,
        routes=[Route("/things", things)],
        dialect=_Dialect(),
        seed=seed,
        signer=lambda body, t: {},
    )
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/things")).json() == {"n": 20}
        await client.put("/_sandbox/chaos", json={"throttle": True})
        assert (await client.get("/things")).status_code == 429
        await client.post("/_sandbox/reset")
        assert (await client.get("/things")).status_code == 200
        stats = (await client.get("/_sandbox/stats")).json()
        assert stats["requests"] == 1
