"""Liveness (`/healthz`: the process answers) and readiness (`/readyz`: its database and Redis do too)."""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

from pydantic import BaseModel
from redis.asyncio import Redis, RedisCluster
from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from db.engine import Sessions
from rest.openapi import Operation, Reply

log = logging.getLogger("tandem.health")
CHECK_TIMEOUT_SECONDS = 2.0


async def _check(name: str, probe: asyncio.Future[object] | object) -> tuple[str, str]:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT_SECONDS)  # type: ignore[arg-type]
    except Exception as exc:
        log.warning("readiness check %s failed: %s", name, exc)
        return name, "unavailable"
    return name, "ok"


def routes(sessions: Sessions, redis: Redis | RedisCluster | None) -> list[Route]:
    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def database_probe() -> None:
        async with sessions() as session:
            await session.execute(text("SELECT 1"))

    async def readyz(request: Request) -> Response:
        probes = [_check("database", database_probe())]
        if redis is not None:
            probes.append(_check("redis", redis.ping()))
        checks = dict(await asyncio.gather(*probes))
        ready = all(state == "ok" for state in checks.values())
        return JSONResponse({"status": "ok" if ready else "unavailable", "checks": checks},
                            status_code=200 if ready else 503)

    return [Route("/healthz", healthz, methods=["GET"]), Route("/readyz", readyz, methods=["GET"])]


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, Literal["ok", "unavailable"]]


OPERATIONS = [
    Operation("GET", "/healthz", "healthz", "Liveness: the process answers", tags=("operations",),
              responses=(Reply(200, "Alive.", Health),)),
    Operation("GET", "/readyz", "readyz", "Readiness: the database (and Redis, when configured) answer",
              tags=("operations",),
              responses=(Reply(200, "Ready to serve.", Readiness),
                         Reply(503, "Something it needs is down.", Readiness))),
    Operation("GET", "/metrics", "metrics", "Prometheus metrics", tags=("operations",),
              responses=(Reply(200, "The text exposition format.", {"type": "string"}, "text/plain"),)),
]
