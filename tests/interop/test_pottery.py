"""pottery's Redlock across the three servers (quorum 2 of 3).

The last test SIGKILLs the third server (pid from INTEROP_PIDS) and shows that
a Redlock still acquires with the two that are left. Keep it last: pytest runs
the tests of a file in order, and run.sh runs this file last.
"""
import os
import signal
import time

import pytest
from pottery import ExtendUnlockedLock, QuorumNotAchieved, Redlock, ReleaseUnlockedLock
from pottery import TooManyExtensions

from conftest import make_client, ports, wait_until


@pytest.fixture
def masters():
    clients = [make_client(p) for p in ports()]
    yield clients
    for c in clients:
        c.close()


def redlock(key, masters, **kw):
    kw.setdefault("auto_release_time", 5)
    return Redlock(key=key, masters=set(masters), **kw)


def held_on(lock, masters):
    """How many masters hold lock.key (any value)."""
    return sum(m.exists(lock.key) for m in masters)


def settles_at(n, lock, masters):
    """pottery returns as soon as a quorum answered; the last master's call may
    still be in flight, so wait (bounded) for the count to reach n."""
    return wait_until(lambda: held_on(lock, masters) == n, timeout=5)


def test_acquire_release(key, masters):
    lock = redlock(key, masters)
    assert lock.acquire(blocking=False)
    assert settles_at(3, lock, masters)
    for m in masters:
        assert 0 < m.pttl(lock.key) <= 5000
    assert 0 < lock.locked() <= 5000
    lock.release()
    assert lock.locked() == 0
    assert settles_at(0, lock, masters)
    with pytest.raises(ReleaseUnlockedLock):
        lock.release()


def test_contention(key, masters):
    first = redlock(key, masters)
    second = redlock(key, masters)
    assert first.acquire(blocking=False)
    assert second.acquire(blocking=False) is False
    assert second.acquire(timeout=0.3) is False
    assert second.locked() == 0
    assert first.locked() > 0
    first.release()
    assert second.acquire(blocking=False)
    assert second.locked() > 0
    second.release()


def test_blocking_acquire_waits_for_release_by_expiry(key, masters):
    first = redlock(key, masters, auto_release_time=0.3)
    second = redlock(key, masters)
    assert first.acquire(blocking=False)
    start = time.monotonic()
    assert second.acquire(timeout=5)     # pottery retries until first's lease ends
    assert time.monotonic() - start >= 0.2
    second.release()


def test_extend(key, masters):
    lock = redlock(key, masters, auto_release_time=5, num_extensions=2)
    assert lock.acquire(blocking=False)
    assert settles_at(3, lock, masters)
    for m in masters:
        assert m.pexpire(lock.key, 500)
    lock.extend()
    for m in masters:   # the last master's extend may still be in flight
        assert wait_until(lambda: 2000 < m.pttl(lock.key) <= 5000, timeout=5)
    lock.extend()
    with pytest.raises(TooManyExtensions):
        lock.extend()
    lock.release()


def test_extend_unlocked_raises(key, masters):
    lock = redlock(key, masters)
    assert lock.acquire(blocking=False)
    assert settles_at(3, lock, masters)
    for m in masters:
        m.delete(lock.key)
    with pytest.raises(ExtendUnlockedLock):
        lock.extend()


def test_context_manager(key, masters):
    lock = redlock(key, masters, context_manager_timeout=2)
    with lock:
        assert lock.locked() > 0
        assert settles_at(3, lock, masters)
        other = redlock(key, masters, context_manager_blocking=False)
        with pytest.raises(QuorumNotAchieved):
            with other:
                pass
    assert lock.locked() == 0
    assert settles_at(0, lock, masters)


def test_expiry(key, masters):
    lock = redlock(key, masters, auto_release_time=0.2)
    assert lock.acquire(blocking=False)
    assert wait_until(lambda: lock.locked() == 0, timeout=5), "Redlock did not expire"
    assert settles_at(0, lock, masters)
    other = redlock(key, masters)
    assert other.acquire(blocking=False)
    other.release()


def test_quorum_with_one_master_taken(key, masters):
    # Someone else holds the key on one master: 2 of 3 is still a quorum.
    probe = redlock(key, masters)
    masters[0].set(probe.key, b"someone-else", px=10000)
    lock = redlock(key, masters)
    assert lock.acquire(blocking=False)
    assert lock.locked() > 0
    lock.release()
    assert masters[0].get(probe.key) == b"someone-else"   # not ours, left alone
    assert settles_at(1, probe, masters)
    masters[0].delete(probe.key)


def test_no_quorum_with_two_masters_taken(key, masters):
    probe = redlock(key, masters)
    for m in masters[:2]:
        m.set(probe.key, b"someone-else", px=10000)
    lock = redlock(key, masters)
    assert lock.acquire(blocking=False) is False
    # A failed attempt cleans up what it did get and leaves the others' values.
    assert wait_until(lambda: masters[2].exists(probe.key) == 0, timeout=5)
    for m in masters[:2]:
        assert m.get(probe.key) == b"someone-else"
        m.delete(probe.key)


# --- keep last: kills the third server ------------------------------------------

def test_zz_quorum_survives_a_killed_server(key, masters):
    pids = os.environ.get("INTEROP_PIDS", "")
    if not pids:
        pytest.skip("INTEROP_PIDS is not set (use tests/interop/run.sh)")
    victim = int(pids.split(",")[2])
    os.kill(victim, signal.SIGKILL)

    def dead():
        try:
            make_client(ports()[2]).ping()
            return False
        except Exception:
            return True

    assert wait_until(dead, timeout=5), "third server still answers after SIGKILL"

    lock = redlock(key, masters)
    start = time.monotonic()
    assert lock.acquire(blocking=False)
    assert time.monotonic() - start < 3
    assert settles_at(2, lock, masters[:2])
    assert lock.locked() > 0
    other = redlock(key, masters)
    assert other.acquire(blocking=False) is False   # still mutually exclusive
    lock.extend()
    lock.release()
    assert settles_at(0, lock, masters[:2])
