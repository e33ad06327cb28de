"""The Redis client for `TANDEM_REDIS_URL`: one server, or a Redis Cluster.

A cluster is named by its URL (`redis+cluster://host:port`, `rediss+cluster://…` with TLS) or by
`TANDEM_REDIS_CLUSTER=true` with a plain `redis://` URL to any of its nodes (managed services hand
out those). redis-py's `RedisCluster` then finds the other nodes, routes each command to the node
holding its key's slot and follows MOVED/ASK while slots move. Tandem's side of the bargain: every
Lua script and MULTI touches keys of one hash tag (see DESIGN.md), and pub/sub is sharded
(`SSUBSCRIBE`/`SPUBLISH`), so a message travels to the node of its channel only.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis, RedisCluster, SSLConnection

RedisClient = Redis | RedisCluster
_CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def is_cluster(url: str, cluster: bool = False) -> bool:
    return cluster or url.split("://", 1)[0] in _CLUSTER_SCHEMES


def _plain(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{_CLUSTER_SCHEMES.get(scheme, scheme)}://{rest}"


def connect(url: str, *, cluster: bool = False, **options: Any) -> RedisClient:
    """A client for `url`; connects on first use. `options`: redis-py's (timeouts, retries)."""
    if is_cluster(url, cluster):
        return RedisCluster.from_url(_plain(url), **options)
    return Redis.from_url(url, **options)


async def node_holding(client: RedisCluster, key: str, **options: Any) -> Redis:
    """A plain connection to the master that holds `key`'s slot now, for a subscriber that must
    notice (rather than have redis-py hide) a lost connection or a slot that moved."""
    await client.initialize()
    node = client.get_node_from_key(key)
    if node is None:
        raise ConnectionError(f"no cluster node holds the slot of {key!r}")
    connection = node.connection_kwargs
    return Redis(host=node.host, port=int(node.port), username=connection.get("username"),
                 password=connection.get("password"), ssl=issubclass(node.connection_class, SSLConnection), **options)
