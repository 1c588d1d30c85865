"""Shared fixtures: the servers that run.sh started (INTEROP_HOST, INTEROP_PORTS)."""
import os
import time
import uuid

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

HOST = os.environ.get("INTEROP_HOST", "127.0.0.1")


def ports():
    raw = os.environ.get("INTEROP_PORTS", "")
    if not raw:
        pytest.skip("INTEROP_PORTS is not set (use tests/interop/run.sh)")
    return [int(p) for p in raw.split(",")]


def make_client(port, protocol=None, **kw):
    """A redis-py client with bounded timeouts and no hidden retries.

    protocol=None keeps the library default (RESP3 via HELLO 3 for redis-py 8).
    """
    args = dict(
        host=HOST,
        port=port,
        socket_timeout=5,
        socket_connect_timeout=2,
        retry=Retry(NoBackoff(), 0),
    )
    if protocol is not None:
        args["protocol"] = protocol
    args.update(kw)
    return redis.Redis(**args)


def wait_until(pred, timeout=5.0, interval=0.01):
    """Poll pred() until it is truthy or timeout passes; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


@pytest.fixture
def key():
    return f"interop:{uuid.uuid4().hex}"
