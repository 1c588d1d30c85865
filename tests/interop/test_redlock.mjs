// node-redlock v5 with ioredis 5 clients on the three servers (node --test).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import Redis from "ioredis";
import Redlock, { ExecutionError, ResourceLockedError } from "redlock";

const HOST = process.env.INTEROP_HOST || "127.0.0.1";
const PORTS = (process.env.INTEROP_PORTS || "").split(",").filter(Boolean).map(Number);
if (PORTS.length !== 3) {
  throw new Error("INTEROP_PORTS must name three ports (use tests/interop/run.sh)");
}

const clients = PORTS.map(
  (port) =>
    new Redis({
      host: HOST,
      port,
      connectTimeout: 2000,
      maxRetriesPerRequest: 1,
      enableReadyCheck: true, // sends INFO and waits for loading:0
      retryStrategy: (times) => (times > 3 ? null : 100),
    }),
);
for (const c of clients) c.on("error", () => {}); // reported through commands instead

const fast = { retryCount: 0, retryDelay: 50, retryJitter: 10 };

function newRedlock(settings = {}) {
  const rl = new Redlock(clients, { ...fast, ...settings });
  // Redlock emits per-client failures as "error"; without a listener a lost
  // vote (which these tests provoke) would throw from the EventEmitter.
  rl.on("error", () => {});
  return rl;
}

const key = (name = "r") => `interop:node:${name}:${randomUUID()}`;

async function waitUntil(pred, timeoutMs = 5000, intervalMs = 10) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await pred();
    if (v || Date.now() >= deadline) return v;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// redlock returns on quorum; the third server's call may still be in flight.
const valuesOn = (k) => Promise.all(clients.map((c) => c.get(k)));
const settled = (k, want) =>
  waitUntil(async () => (await valuesOn(k)).every((v) => v === want));

async function lockedErrorsOf(err) {
  assert.ok(err instanceof ExecutionError, `expected ExecutionError, got ${err}`);
  const stats = await err.attempts[err.attempts.length - 1];
  return [...stats.votesAgainst.values()];
}

before(async () => {
  await Promise.all(clients.map((c) => c.ping()));
});

after(async () => {
  await Promise.all(clients.map((c) => c.quit().catch(() => c.disconnect())));
});

test("ioredis passed its INFO ready check", async () => {
  for (const c of clients) {
    assert.equal(c.status, "ready");
    // The same plain INFO ioredis sends on connect: loading must be absent or 0.
    const info = await c.info();
    assert.doesNotMatch(info, /^loading:1/m);
    assert.match(await c.info("server"), /^redis_version:\d+\.\d+/m);
  }
});

test("acquire and release", async () => {
  const rl = newRedlock();
  const k = key();
  const lock = await rl.acquire([k], 5000);
  assert.deepEqual(lock.resources, [k]);
  assert.ok(lock.expiration > Date.now());
  assert.ok(await settled(k, lock.value));
  for (const c of clients) {
    const pttl = await c.pttl(k);
    assert.ok(pttl > 0 && pttl <= 5000, `pttl ${pttl}`);
  }
  await lock.release();
  assert.ok(await settled(k, null));
});

test("extend", async () => {
  const rl = newRedlock();
  const k = key();
  const lock = await rl.acquire([k], 1000);
  const extended = await lock.extend(10000);
  assert.equal(extended.value, lock.value);
  assert.ok(extended.expiration > lock.expiration);
  assert.ok(
    await waitUntil(async () => {
      const ttls = await Promise.all(clients.map((c) => c.pttl(k)));
      return ttls.every((t) => t > 5000 && t <= 10000);
    }),
  );
  await extended.release();
  assert.ok(await settled(k, null));
});

test("several resources at once", async () => {
  const rl = newRedlock();
  const a = key("a");
  const b = key("b");
  const lock = await rl.acquire([a, b], 5000);
  assert.ok(await settled(a, lock.value));
  assert.ok(await settled(b, lock.value));
  const ext = await lock.extend(8000);
  await ext.release();
  assert.ok(await settled(a, null));
  assert.ok(await settled(b, null));
});

test("second acquire of a held resource fails with ResourceLockedError votes", async () => {
  const rl = newRedlock();
  const k = key();
  const lock = await rl.acquire([k], 5000);
  let caught;
  try {
    await rl.acquire([k], 5000);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught, "second acquire succeeded");
  const errors = await lockedErrorsOf(caught);
  assert.ok(errors.length >= 2, `votes against: ${errors.length}`);
  for (const e of errors) assert.ok(e instanceof ResourceLockedError, String(e));
  // The holder is untouched by the failed attempt.
  assert.ok(await settled(k, lock.value));
  await lock.release();
});

test("multi-resource acquire is all or nothing", async () => {
  const rl = newRedlock();
  const a = key("a");
  const c = key("c");
  const held = await rl.acquire([a], 5000);
  await assert.rejects(rl.acquire([a, c], 5000), ExecutionError);
  assert.ok(await settled(c, null), "free resource was taken by a failed acquire");
  assert.ok(await settled(a, held.value));
  await held.release();
});

test("acquire succeeds with retries once the holder releases", async () => {
  const rl = newRedlock();
  const k = key();
  const first = await rl.acquire([k], 5000);
  const waiting = newRedlock({ retryCount: 50, retryDelay: 50, retryJitter: 10 }).acquire(
    [k],
    5000,
  );
  await sleep(100);
  await first.release();
  const second = await waiting;
  assert.notEqual(second.value, first.value);
  assert.ok(await settled(k, second.value));
  await second.release();
});

test("lock expires after its ttl; releasing it then fails", async () => {
  const rl = newRedlock();
  const k = key();
  const lock = await rl.acquire([k], 200);
  assert.ok(await settled(k, null), "lock did not expire");
  await assert.rejects(lock.release(), ExecutionError);
  const next = await rl.acquire([k], 5000);
  await next.release();
});

test("extend of a lost lock fails", async () => {
  const rl = newRedlock();
  const k = key();
  const lock = await rl.acquire([k], 5000);
  assert.ok(await settled(k, lock.value));
  await Promise.all(clients.map((c) => c.del(k)));
  await assert.rejects(lock.extend(5000), ExecutionError);
  assert.ok(await settled(k, null), "extend re-created a lost lock");
});

test("EVALSHA NOSCRIPT falls back to EVAL", async () => {
  // redlock always tries EVALSHA first; after SCRIPT FLUSH every server
  // answers NOSCRIPT and redlock must fall back to EVAL.
  await Promise.all(clients.map((c) => c.script("FLUSH")));
  const rl = newRedlock();
  const k = key();
  const lock = await rl.acquire([k], 5000);
  await lock.release();
  assert.ok(await settled(k, null));
});

test("using() extends automatically past the ttl", async () => {
  const rl = newRedlock({ automaticExtensionThreshold: 400 });
  const k = key();
  let value;
  await rl.using([k], 1000, async (signal) => {
    value = (await clients[0].get(k)) ?? (await clients[1].get(k));
    await sleep(1500); // half as long again as the 1000 ms ttl
    assert.equal(signal.aborted, false, String(signal.error));
    const vals = await valuesOn(k);
    assert.ok(vals.filter((v) => v === value).length >= 2, `values ${vals}`);
  });
  assert.ok(value);
  assert.ok(await settled(k, null));
});
