"""Realtime: the pub/sub broker (in-memory or Redis), collaborative document sessions, presence.

Not yet built: see the subscriptions issue.
"""
