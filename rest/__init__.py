"""The thin REST layer: inbound webhooks (`webhooks_in`, applied by `inbound_processing`), the
outbound delivery worker (`delivery`, `worker`, `leases`), `Idempotency-Key` (`idempotency`),
health, and the OpenAPI description of it all (`openapi`, served at /openapi.json, shown at /docs).

Every REST error has one JSON shape: `{"error": {"code", "message", "details", "requestId"}}`.
"""
