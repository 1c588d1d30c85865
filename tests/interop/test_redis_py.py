"""redis-py against the first server: the built-in Lock, and the raw lock idiom.

Lock tests run twice: with a RESP2 client (protocol=2) and a RESP3 client
(protocol=3, HELLO 3 -- what redis-py 8 does by default).
"""
import hashlib
import os
import threading
import time
import uuid

import pytest
import redis
from redis.exceptions import LockError, LockNotOwnedError, NoScriptError

from conftest import make_client, ports, wait_until

RELEASE = ('if redis.call("get",KEYS[1]) == ARGV[1] then '
           'return redis.call("del",KEYS[1]) else return 0 end')

PROTOCOLS = [2, 3]


@pytest.fixture(params=PROTOCOLS, ids=lambda p: f"resp{p}")
def r(request):
    client = make_client(ports()[0], protocol=request.param)
    yield client
    client.close()


@pytest.fixture
def r_default():
    client = make_client(ports()[0])
    yield client
    client.close()


# --- connection -------------------------------------------------------------

def test_library_version():
    major = int(redis.__version__.split(".")[0])
    assert major >= 5, redis.__version__


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=lambda p: f"resp{p}")
def test_handshake(protocol):
    conn = redis.Connection(host=os.environ.get("INTEROP_HOST", "127.0.0.1"),
                            port=ports()[0], protocol=protocol, socket_timeout=5)
    try:
        conn.connect()
        if protocol == 3:
            meta = {(k.decode() if isinstance(k, bytes) else k): v
                    for k, v in conn.handshake_metadata.items()}
            assert meta["proto"] == 3
            assert "version" in meta and "server" in meta
        conn.send_command("PING")
        assert conn.read_response() in (b"PONG", "PONG", True)
    finally:
        conn.disconnect()


def test_default_client_ping_and_info(r_default):
    assert r_default.ping() is True
    info = r_default.info("server")
    assert "redis_version" in info


# --- redis-py Lock ----------------------------------------------------------

def test_lock_acquire_release(r, key):
    lock = r.lock(key, timeout=5)
    assert lock.acquire(blocking=False)
    assert lock.locked()
    assert lock.owned()
    assert 0 < r.pttl(key) <= 5000
    lock.release()
    assert not lock.locked()
    assert r.exists(key) == 0


def test_lock_nonblocking_fails_when_held(r, key):
    holder = r.lock(key, timeout=5)
    assert holder.acquire(blocking=False)
    other = r.lock(key, timeout=5)
    assert other.acquire(blocking=False) is False
    start = time.monotonic()
    assert other.acquire(blocking=True, blocking_timeout=0.2) is False
    assert time.monotonic() - start < 4
    assert not other.owned()
    holder.release()


def test_lock_blocking_acquire_after_release(r, key):
    holder = r.lock(key, timeout=10)
    assert holder.acquire(blocking=False)
    # thread_local=False: the token set in the worker thread is visible here.
    waiter = r.lock(key, timeout=10, sleep=0.02, thread_local=False)
    result = {}

    def wait_for_it():
        result["acquired"] = waiter.acquire(blocking=True, blocking_timeout=8)

    t = threading.Thread(target=wait_for_it, daemon=True)
    t.start()
    t.join(0.3)
    assert t.is_alive(), "waiter got the lock while it was held"
    holder.release()
    t.join(8)
    assert not t.is_alive()
    assert result["acquired"] is True
    assert waiter.owned()
    waiter.release()
    assert r.exists(key) == 0


def test_lock_context_manager(r, key):
    with r.lock(key, timeout=5, blocking_timeout=2):
        assert r.exists(key) == 1
    assert r.exists(key) == 0


def test_lock_extend(r, key):
    lock = r.lock(key, timeout=2)
    assert lock.acquire(blocking=False)
    assert lock.extend(10) is True              # adds 10 s to the remaining ttl
    assert 10000 < r.pttl(key) <= 12000
    assert lock.extend(3, replace_ttl=True) is True
    assert 2000 < r.pttl(key) <= 3000
    lock.release()


def test_lock_reacquire(r, key):
    lock = r.lock(key, timeout=10)
    assert lock.acquire(blocking=False)
    assert r.pexpire(key, 500)
    assert r.pttl(key) <= 500
    assert lock.reacquire() is True
    assert 5000 < r.pttl(key) <= 10000
    lock.release()


def test_release_of_lost_lock_raises(r, key):
    lock = r.lock(key, timeout=5)
    assert lock.acquire(blocking=False)
    r.delete(key)
    with pytest.raises(LockNotOwnedError):
        lock.release()


def test_release_of_taken_over_lock_raises_and_keeps_new_holder(r, key):
    lock = r.lock(key, timeout=5)
    assert lock.acquire(blocking=False)
    r.set(key, b"someone-else", px=5000)
    with pytest.raises(LockNotOwnedError):
        lock.release()
    assert r.get(key) == b"someone-else"


def test_extend_of_lost_lock_raises(r, key):
    lock = r.lock(key, timeout=5)
    assert lock.acquire(blocking=False)
    r.delete(key)
    with pytest.raises(LockNotOwnedError):
        lock.extend(5)
    with pytest.raises(LockNotOwnedError):
        lock.reacquire()


def test_extend_of_unacquired_lock_raises(r, key):
    with pytest.raises(LockError):
        r.lock(key, timeout=5).extend(5)


def test_lock_expires_by_timeout(r, key):
    lock = r.lock(key, timeout=0.2)
    start = time.monotonic()
    assert lock.acquire(blocking=False)
    pttl = r.pttl(key)
    assert pttl == -2 or 0 < pttl <= 200, pttl    # -2: already gone on a slow machine
    assert wait_until(lambda: not lock.locked(), timeout=5), "lock did not expire"
    # A lease never ends early (allow a little for the client-side clock start).
    assert time.monotonic() - start >= 0.15
    other = r.lock(key, timeout=5)
    assert other.acquire(blocking=False)
    with pytest.raises(LockNotOwnedError):
        lock.release()
    other.release()


# --- the raw idiom ------------------------------------------------------------

def test_set_nx_px_binary_value(r, key):
    value = b"\x00\r\n\xff" + os.urandom(16)      # 20 raw bytes, with the nasty ones
    assert len(value) == 20
    assert r.set(key, value, nx=True, px=10000) is True
    assert r.set(key, os.urandom(20), nx=True, px=10000) is None
    assert r.get(key) == value
    assert 0 < r.pttl(key) <= 10000
    assert r.type(key) in (b"string", "string")
    r.delete(key)


def test_eval_release_script(r, key):
    value = os.urandom(20)
    assert r.set(key, value, nx=True, px=10000)
    assert r.eval(RELEASE, 1, key, os.urandom(20)) == 0
    assert r.get(key) == value
    assert r.eval(RELEASE, 1, key, value) == 1
    assert r.exists(key) == 0
    assert r.eval(RELEASE, 1, key, value) == 0


def test_eval_returns_binary_bulk(r, key):
    value = b"\x00\x01\xfe\xff" + os.urandom(16)
    r.set(key, value, px=10000)
    assert r.eval("return redis.call('get', KEYS[1])", 1, key) == value
    assert r.eval("return redis.call('get', KEYS[1])", 1, key + ":missing") is None
    r.delete(key)


def test_evalsha_release_script(r, key):
    sha = r.script_load(RELEASE)
    assert sha == hashlib.sha1(RELEASE.encode()).hexdigest()
    assert r.script_exists(sha) == [True]
    value = os.urandom(20)
    assert r.set(key, value, nx=True, px=10000)
    assert r.evalsha(sha, 1, key, b"wrong") == 0
    assert r.evalsha(sha, 1, key, value) == 1
    assert r.exists(key) == 0


def test_evalsha_unknown_script_is_noscript(r, key):
    with pytest.raises(NoScriptError) as err:
        r.evalsha("0" * 40, 1, key)
    assert "No matching script" in str(err.value)


def test_register_script_noscript_fallback(r, key):
    # A script text that no server has seen: the first call gets NOSCRIPT from
    # EVALSHA, then redis-py loads it (SCRIPT LOAD) and retries.
    text = f"-- {uuid.uuid4().hex}\n" + RELEASE
    sha = hashlib.sha1(text.encode()).hexdigest()
    assert r.script_exists(sha) == [False]
    release = r.register_script(text)
    value = os.urandom(20)
    assert r.set(key, value, nx=True, px=10000)
    assert release(keys=[key], args=[value]) == 1
    assert r.script_exists(sha) == [True]
    assert release(keys=[key], args=[value]) == 0


def test_script_flush_then_register_script_reloads(r, key):
    release = r.register_script(RELEASE)
    value = os.urandom(20)
    r.set(key, value, px=10000)
    assert release(keys=[key], args=[b"x"]) == 0
    assert r.script_flush() is True
    assert r.script_exists(release.sha) == [False]
    assert release(keys=[key], args=[value]) == 1
