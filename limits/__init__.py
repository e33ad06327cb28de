"""Query limits and pricing, plugged into Strawberry as extensions: the static limits checked before
validation (`query_limits`, `shape`), the cost model read from the schema's `@cost`/`@listSize`
directives and the analysis (`cost_model`, `cost`), the cost-based token buckets (`buckets` in
memory, `redis_buckets`, `limiter`, `cost_limit`), and the WebSocket limits (`websocket`,
`connection_slots`). `app/limits.py` chooses and wires them.
"""
