"""Persisted queries: trusted-document manifests (`*.json` here, with `schema.lock.graphql`), the APQ
store (memory or Redis), the parsed-document cache, the trusted-documents policy and the schema check.

Nothing here imports the rest of Tandem: `app/persisted.py` wires these parts from settings, and the
HTTP transport calls `OperationResolver` (resolve.py) before executing.
"""
