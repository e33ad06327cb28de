"""Sending outbound webhooks: claim due deliveries, sign, POST, record the attempt, reschedule.

At-least-once: a delivery stays pending until an attempt gets a 2xx. Failures are retried with
exponential backoff and jitter; a receiver therefore deduplicates on `webhook-id`. An endpoint
that has been failing for 3 days is disabled (its owner's other endpoints hear about it through
a `webhook_endpoint.disabled` event), and a single delivery is given up after 3 days.

Every attempt connects to an address that the URL policy allowed a moment before (see
`resolvers.webhook_urls`), never follows redirects, and reads no more of the answer than its status.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.engine import Sessions
from db.models import utcnow
from db.secret_box import SecretBox, UndecryptableSecret
from db.webhooks import (
    SECRET_CONTEXT,
    AttemptOutcome,
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from resolvers import outbox
from resolvers.webhook_urls import BlockedAddress, UnresolvableHost, UrlPolicy, public_addresses
from rest import leases
from rest.signing import headers_for

log = logging.getLogger("tandem.webhooks.delivery")

USER_AGENT = "Tandem-Webhooks/1"
DISABLE_AFTER = timedelta(days=3)
GIVE_UP_AFTER = timedelta(days=3)
ERROR_MAX = 500


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    url_policy: UrlPolicy
    secrets: SecretBox  # endpoints' signing secrets are stored sealed
    timeout_seconds: float = 10.0
    retry_base_seconds: float = 30.0
    retry_max_seconds: float = 3600.0
    lease_seconds: float = 120.0
    batch_size: int = 20
    # Told of every attempt: its outcome and how late it was (seconds after it was due), for metrics.
    on_attempt: Callable[[str, float], None] = lambda outcome, lag_seconds: None
    disable_after: timedelta = DISABLE_AFTER
    give_up_after: timedelta = GIVE_UP_AFTER


def backoff_seconds(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Delay after failed attempt number `attempt` (1, 2, …): base·2^(n-1), capped, "equal jitter".

    Half the delay is fixed and half random, so retries of many deliveries that failed together
    (a receiver's outage) spread out instead of arriving in waves, yet never come back too soon.
    """
    delay = min(cap, base * 2.0 ** min(attempt - 1, 62))
    jitter: float = (rng or random).uniform(0, delay / 2)
    return delay / 2 + jitter


@dataclass(frozen=True, slots=True)
class _Claimed:
    delivery_id: int
    endpoint_id: int
    url: str
    secrets: tuple[str, ...]
    message_id: str
    payload: str
    due_at: datetime


@dataclass(frozen=True, slots=True)
class _Result:
    outcome: AttemptOutcome
    attempted_at: datetime
    latency_ms: int
    response_status: int | None = None
    error: str | None = None


def _secrets(endpoint: WebhookEndpoint, now: datetime, box: SecretBox) -> tuple[str, ...]:
    """The secrets to sign with, opened; none when they cannot be (the attempt then fails, saying why)."""
    sealed = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and expires > now:
        sealed.append(endpoint.previous_secret)
    try:
        return tuple(box.open(value, context=SECRET_CONTEXT) for value in sealed)
    except UndecryptableSecret as exc:
        log.error("webhook endpoint %s: signing secret unreadable (%s)", endpoint.id, exc)
        return ()


class Deliverer:
    """One instance's share of the delivery work; `run_once()` is one claim-send-record round."""

    def __init__(self, sessions: Sessions, config: DeliveryConfig, client: httpx.AsyncClient) -> None:
        self.sessions = sessions
        self.config = config
        self.client = client
        self._stopping = False

    def stop_soon(self) -> None:
        """Finish the attempt in flight, hand back the rest of the batch."""
        self._stopping = True

    async def run_once(self) -> int:
        token = leases.new_token()
        batch = await self._claim(token)
        if not batch:
            return 0
        # Deliveries to one endpoint go one after another, in event order; endpoints in parallel.
        by_endpoint: dict[int, list[_Claimed]] = defaultdict(list)
        for item in batch:
            by_endpoint[item.endpoint_id].append(item)
        await asyncio.gather(*(self._send_in_order(items, token) for items in by_endpoint.values()))
        return len(batch)

    async def _claim(self, token: str) -> list[_Claimed]:
        now = utcnow()
        enabled = select(WebhookEndpoint.id).where(WebhookEndpoint.enabled.is_(True))
        async with self.sessions.begin() as session:
            ids = await leases.claim(
                session,
                WebhookDelivery,
                [
                    WebhookDelivery.status == DeliveryStatus.PENDING.value,
                    WebhookDelivery.next_attempt_at <= now,
                    WebhookDelivery.endpoint_id.in_(enabled),
                ],
                [WebhookDelivery.next_attempt_at, WebhookDelivery.id],
                limit=self.config.batch_size,
                now=now,
                lease=timedelta(seconds=self.config.lease_seconds),
                token=token,
            )
            if not ids:
                return []
            found = await session.execute(
                select(WebhookDelivery.id, WebhookEndpoint, WebhookEvent.message_id, WebhookEvent.payload,
                       WebhookDelivery.next_attempt_at)
                .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
                .where(WebhookDelivery.id.in_(ids))
                .order_by(WebhookDelivery.event_id, WebhookDelivery.id)
            )
            return [
                _Claimed(delivery_id, endpoint.id, endpoint.url, _secrets(endpoint, now, self.config.secrets),
                         message_id, payload, due_at)
                for delivery_id, endpoint, message_id, payload, due_at in found.all()
            ]

    async def _send_in_order(self, items: list[_Claimed], token: str) -> None:
        for index, item in enumerate(items):
            if self._stopping:
                await self._release([i.delivery_id for i in items[index:]], token)
                return
            result = await self._attempt(item)
            self.config.on_attempt(result.outcome.value, (result.attempted_at - item.due_at).total_seconds())
            await self._record(item, result, token)

    async def _attempt(self, item: _Claimed) -> _Result:
        attempted_at = utcnow()
        started = time.perf_counter()

        def done(outcome: AttemptOutcome, status: int | None = None, error: str | None = None) -> _Result:
            latency = int((time.perf_counter() - started) * 1000)
            return _Result(outcome, attempted_at, latency, status, error[:ERROR_MAX] if error else None)

        if not item.secrets:  # never send unsigned: the receiver could not tell us from anyone
            return done(AttemptOutcome.FAILED, error="The signing secret cannot be decrypted with TANDEM_SECRET_KEY; "
                                                      "rotate the endpoint's secret.")
        parts = urlsplit(item.url)
        try:
            addresses = await public_addresses(parts, self.config.url_policy)
        except BlockedAddress as exc:
            return done(AttemptOutcome.BLOCKED, error=str(exc))
        except UnresolvableHost as exc:
            return done(AttemptOutcome.UNREACHABLE, error=str(exc))
        url = httpx.URL(item.url)
        headers = {
            **headers_for(item.secrets, item.message_id, item.payload),
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "host": url.netloc.decode("ascii"),
        }
        # Where private targets are refused, connect to an address just checked, not to whatever the
        # name resolves to next; in development the name is used as it is (localhost may be ::1 or
        # 127.0.0.1, and the receiver may listen on only one of them).
        if self.config.url_policy.allow_private:
            targets = [url]
        else:
            targets = [url.copy_with(host=address) for address in addresses]
        extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
        try:
            async with asyncio.timeout(self.config.timeout_seconds):
                status = await self._post(targets, item.payload.encode(), headers, extensions)
        except (TimeoutError, httpx.TimeoutException):
            return done(AttemptOutcome.TIMED_OUT, error=f"No answer within {self.config.timeout_seconds:g} s.")
        except httpx.HTTPError as exc:
            return done(AttemptOutcome.UNREACHABLE, error=f"{type(exc).__name__}: {exc}".rstrip(": "))
        if 200 <= status < 300:
            return done(AttemptOutcome.SUCCEEDED, status)
        return done(AttemptOutcome.FAILED, status, f"The endpoint answered {status}.")

    async def _post(
        self, targets: list[httpx.URL], body: bytes, headers: dict[str, str], extensions: dict[str, str]
    ) -> int:
        """POST to the first target that accepts a connection; the answer's status."""
        for index, target in enumerate(targets):
            request = self.client.build_request("POST", target, content=body, headers=headers, extensions=extensions)
            try:
                response = await self.client.send(request, stream=True)
            except httpx.ConnectError:
                if index == len(targets) - 1:
                    raise
                continue  # e.g. an IPv6 address first, and the receiver listens on IPv4 only
            await response.aclose()  # the status is all we need; never read a large body
            return response.status_code
        raise AssertionError("no target")  # public_addresses never returns an empty list

    async def _record(self, item: _Claimed, result: _Result, token: str) -> None:
        now = utcnow()
        async with self.sessions.begin() as session:
            delivery = await session.get(WebhookDelivery, item.delivery_id, with_for_update=True)
            if delivery is None:  # its endpoint was deleted meanwhile
                return
            delivery.attempt_count += 1
            session.add(WebhookAttempt(
                delivery_id=delivery.id, number=delivery.attempt_count, attempted_at=result.attempted_at,
                outcome=result.outcome.value, response_status=result.response_status,
                latency_ms=result.latency_ms, error=result.error,
            ))
            log.info("webhook attempt", extra={
                "delivery_id": delivery.id, "attempt": delivery.attempt_count, "outcome": result.outcome.value,
                "status": result.response_status, "latency_ms": result.latency_ms,
            })
            if delivery.lock_token != token:
                return  # our lease ran out and someone else owns the row now: log the attempt, nothing more
            delivery.locked_until = None
            delivery.lock_token = None
            endpoint = await session.get(WebhookEndpoint, item.endpoint_id, with_for_update=True)
            assert endpoint is not None  # deleting an endpoint deletes its deliveries
            if result.outcome is AttemptOutcome.SUCCEEDED:
                delivery.status = DeliveryStatus.SUCCEEDED.value
                endpoint.failing_since = None
                return
            if endpoint.failing_since is None:
                endpoint.failing_since = now
            if endpoint.enabled and now - endpoint.failing_since >= self.config.disable_after:
                await self._disable(session, endpoint, now)
                delivery.status = DeliveryStatus.FAILED.value
            elif now - delivery.created_at >= self.config.give_up_after:
                delivery.status = DeliveryStatus.FAILED.value
            else:
                delay = backoff_seconds(
                    delivery.attempt_count, self.config.retry_base_seconds, self.config.retry_max_seconds
                )
                delivery.next_attempt_at = now + timedelta(seconds=delay)

    async def _disable(self, session: AsyncSession, endpoint: WebhookEndpoint, now: datetime) -> None:
        endpoint.enabled = False
        endpoint.disabled_at = now
        endpoint.disabled_reason = f"Every attempt failed for {self.config.disable_after.days} days."
        await session.flush()
        await outbox.endpoint_disabled(session, endpoint)
        log.warning("webhook endpoint disabled after failing", extra={"endpoint_id": endpoint.id})

    async def _release(self, delivery_ids: list[int], token: str) -> None:
        """Hand claimed but unsent deliveries back at once, rather than when the lease runs out."""
        async with self.sessions.begin() as session:
            await session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id.in_(delivery_ids), WebhookDelivery.lock_token == token)
                .values(locked_until=None, lock_token=None)
            )
