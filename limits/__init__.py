"""Query limits and pricing: depth/alias/token limits, static cost analysis, token-bucket rate limiting.

Plugs into Strawberry as extensions and validation rules (not yet built: see the limits issue).
"""
