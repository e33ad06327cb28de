"""`POST /auth/ws-ticket`: trade the bearer token for a single-use, 30-second WebSocket ticket."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from auth.authenticate import Identity
from auth.revocation import RevocationUnavailable
from auth.viewer import bearer_token
from auth.ws_tickets import TicketStore
from resolvers.errors import Unauthenticated
from rest.errors import error_response
from rest.openapi import Operation, Reply

Identify = Callable[[str], Awaitable[Identity]]


class Ticket(BaseModel):
    ticket: str = Field(description="Open `/graphql?ticket=…` with it, once, within `expiresIn` seconds.")
    expiresIn: int


def routes(identify: Identify, tickets: TicketStore, ttl_seconds: int, request_id: Callable[[], str]) -> list[Route]:
    """`identify`: the authenticator's, so a ticket is had for exactly the tokens a socket accepts."""

    async def ws_ticket(request: Request) -> Response:
        challenge = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
        try:
            token = bearer_token(request.headers.get("authorization"))
            if token is None:
                raise Unauthenticated("Send the access token as `Authorization: Bearer <token>`.")
            await identify(token)
        except Unauthenticated as exc:
            return error_response(401, "UNAUTHENTICATED", exc.message, request_id(), headers=challenge)
        except RevocationUnavailable as exc:
            return error_response(503, "SERVICE_UNAVAILABLE", str(exc), request_id(), headers={"Retry-After": "5"})
        ticket = await tickets.issue(token)
        return JSONResponse(
            {"ticket": ticket, "expiresIn": ttl_seconds},
            status_code=201,
            headers={"Cache-Control": "no-store"},
        )

    return [Route("/auth/ws-ticket", ws_ticket, methods=["POST"])]


OPERATIONS: Sequence[Operation] = [
    Operation("POST", "/auth/ws-ticket", "createWsTicket", "A single-use ticket for a WebSocket handshake",
              tags=("realtime",), security=("bearer",),
              description="For clients that cannot put the token into `connection_init` (the ticket stands for it).",
              responses=(Reply(201, "The ticket (`Cache-Control: no-store`).", Ticket),), errors=(401, 503)),
]
