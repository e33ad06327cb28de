"""The thin REST layer: health and readiness now; webhooks, WebSocket tickets and OpenAPI later.

Every REST error has one JSON shape: `{"error": {"code", "message", "details", "requestId"}}`.
"""
