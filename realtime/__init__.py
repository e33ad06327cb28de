"""Realtime: the pub/sub broker (in-memory or Redis), collaborative document content (pycrdt, with a
durable update log), and presence. `realtime.hub.Realtime` bundles them; `app/` builds one per process.
"""
