"""Persisted queries: trusted-document manifests (*.json) and the APQ / allowlist store.

Not yet built: see the persisted-queries issue.
"""
