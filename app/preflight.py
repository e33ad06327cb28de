"""Settings that would run, but not safely: refused before the server starts, saying what to set.

Production without Redis keeps rate-limit buckets, the revocation list, APQ, WebSocket tickets and
slots in each process: with several workers or hosts a revoked token still works on the others and
every limit multiplies. That is fine for exactly one process on one host, which the operator says with
`TANDEM_SINGLE_INSTANCE=true` (`tandem serve --single-instance`).
"""

from __future__ import annotations

from app.settings import Settings


class UnsafeConfiguration(SystemExit):
    """Refused settings; the message says why and what to set."""


def check(settings: Settings, *, workers: int = 1) -> None:
    if settings.single_instance and workers > 1:
        raise UnsafeConfiguration(
            f"--single-instance with --workers {workers}: several processes need TANDEM_REDIS_URL to share "
            "rate limits, revocations and caches.")
    if settings.production and settings.redis_url is None and not settings.single_instance:
        raise UnsafeConfiguration(
            "TANDEM_ENV=production without TANDEM_REDIS_URL keeps rate limits, revoked tokens, APQ and "
            "WebSocket tickets in each process. Set TANDEM_REDIS_URL, or TANDEM_SINGLE_INSTANCE=true "
            "(tandem serve --single-instance) if this is the only process on the only host.")


def issuer_hint(settings: Settings, host: str, port: int) -> str | None:
    """In development, what to set when TANDEM_ISSUER names another port than the one served."""
    from urllib.parse import urlsplit

    issued = urlsplit(settings.issuer)
    if settings.production or issued.port in (None, port):
        return None
    suggested = f"{issued.scheme}://{issued.hostname}:{port}"
    return (f"TANDEM_ISSUER is {settings.issuer}, but this server listens on port {port}: GraphiQL's sign-in "
            f"and OAuth discovery will point at the wrong port. Set TANDEM_ISSUER={suggested} for "
            "`tandem seed`, `tandem serve` and `tandem token` alike.")
