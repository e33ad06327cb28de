"""Request ids: a sane incoming id is kept, anything else replaced by a fresh random one."""

from __future__ import annotations

import os

from app.request_id import new_request_id


def test_made_ids_are_random_hex_and_never_repeat() -> None:
    made = [new_request_id(None) for _ in range(5000)]  # past several pools of random bytes
    assert len(set(made)) == len(made)
    assert all(len(made_id) == 32 and int(made_id, 16) >= 0 for made_id in made)


def test_a_sane_incoming_id_is_kept_and_an_odd_one_replaced() -> None:
    assert new_request_id("client-trace.0001") == "client-trace.0001"
    for odd in ("short", "has space in it", "<script>alert(1)</script>", "x" * 129, ""):
        replaced = new_request_id(odd)
        assert replaced != odd and len(replaced) == 32


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    new_request_id(None)  # the pool has ids left that the parent will hand out next
    reading, writing = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.write(writing, "".join(new_request_id(None) for _ in range(10)).encode())
        os._exit(0)
    os.close(writing)
    os.waitpid(child, 0)
    from_child = os.read(reading, 4096).decode()
    os.close(reading)
    child_ids = {from_child[i:i + 32] for i in range(0, len(from_child), 32)}
    parent_ids = {new_request_id(None) for _ in range(10)}
    assert len(child_ids) == 10 and not child_ids & parent_ids
