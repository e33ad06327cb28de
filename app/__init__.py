"""Composition root: settings, `create_app()`, the HTTP transport, logging, metrics and the `tandem` CLI.

Nothing imports `app`; it wires every other package together.
"""
