// Unit tests of examples/web/token-client.js, with a fake fetch and a fake clock: no browser, no
// server. The browser tests (browser.test.mjs) run the same module against the real service.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  createTokenClient,
  refreshOnSdkEvent,
  parseRetryAfter,
  refreshMargin,
} from '../../examples/web/token-client.js';

const START = Date.parse('2026-11-26T12:00:00Z');

/** A clock and timers that only move when the test says so. */
function fakeTime() {
  let now = START;
  let nextId = 1;
  const timers = new Map();
  return {
    now: () => now,
    setTimeout(fn, ms) {
      const id = nextId++;
      timers.set(id, { at: now + ms, fn });
      return id;
    },
    clearTimeout(id) {
      timers.delete(id);
    },
    pending: () => timers.size,
    /** Moves the clock, running every timer that falls due, in order. */
    async advance(ms) {
      const until = now + ms;
      for (;;) {
        await flush();
        const due = [...timers.entries()]
          .filter(([, t]) => t.at <= until)
          .sort((a, b) => a[1].at - b[1].at)[0];
        if (!due) break;
        timers.delete(due[0]);
        now = due[1].at;
        due[1].fn();
      }
      now = until;
      await flush();
    },
  };
}

const flush = () => new Promise((resolve) => setImmediate(resolve));

function tokenResponse(time, { ttl = 600, identity = 'alice', token = 'eyJ.fake.token' } = {}) {
  const expires_at = new Date(time.now() + ttl * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
  return json(200, { token, identity, app: 'web', grants: ['sync'], ttl, expires_at });
}

function json(status, body, headers = {}) {
  const type = status < 400 ? 'application/json' : 'application/problem+json';
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'Content-Type': type, 'X-Request-Id': 'req-1', ...headers },
  });
}

const problem = (status, code, headers) =>
  json(status, { type: 'about:blank', title: code, status, detail: `${code} detail`, code }, headers);

/** A client over a scripted fetch: `answers` are functions of the call number. */
function setup(answer, options = {}) {
  const time = fakeTime();
  const calls = [];
  const idpCalls = [];
  const seen = { tokens: [], retries: [], errors: [] };
  const client = createTokenClient({
    url: 'http://127.0.0.1:8080/apps/web/token',
    getIdpToken: async ({ forceRefresh }) => {
      idpCalls.push({ forceRefresh });
      return `idp-${idpCalls.length}`;
    },
    fetch: async (url, init) => {
      calls.push({ url, init });
      return answer(calls.length, time);
    },
    now: time.now,
    setTimeout: time.setTimeout,
    clearTimeout: time.clearTimeout,
    random: () => 0.5,
    onToken: (t) => seen.tokens.push(t),
    onRetry: (r) => seen.retries.push(r),
    onError: (e) => seen.errors.push(e),
    ...options,
  });
  return { client, time, calls, idpCalls, seen };
}

describe('token client', () => {
  it('sends the IdP token as a Bearer credential and the request as JSON, without cookies', async () => {
    const { client, time, calls } = setup((_, time) => tokenResponse(time), {
      request: { grants: ['sync'], device_id: 'tab-1' },
    });
    const token = await client.start();
    assert.equal(token.identity, 'alice');
    assert.equal(calls.length, 1);
    const { url, init } = calls[0];
    assert.equal(url, 'http://127.0.0.1:8080/apps/web/token');
    assert.equal(init.method, 'POST');
    assert.equal(init.headers.Authorization, 'Bearer idp-1');
    assert.equal(init.headers['Content-Type'], 'application/json');
    assert.deepEqual(JSON.parse(init.body), { grants: ['sync'], device_id: 'tab-1' });
    assert.equal(init.credentials, 'omit');
    assert.equal(client.state, 'running');
    assert.equal(time.pending(), 1);
  });

  it('refreshes when 80% of a 10-minute token has passed, and again after that', async () => {
    const { client, time, calls, seen } = setup((n, time) => tokenResponse(time, { token: `t${n}` }));
    await client.start();
    assert.equal(client.current.refreshAt - START, 480_000);
    await time.advance(479_000);
    assert.equal(calls.length, 1);
    await time.advance(1_000);
    assert.equal(calls.length, 2);
    assert.equal(seen.tokens.at(-1).token, 't2');
    await time.advance(480_000);
    assert.equal(calls.length, 3);
  });

  it('refreshes at least 30 s before expiry, and half-way through very short tokens', () => {
    assert.equal(refreshMargin(3_600_000), 720_000);
    assert.equal(refreshMargin(100_000), 30_000);
    assert.equal(refreshMargin(20_000), 10_000);
  });

  it('uses expires_at when the server says the token ends sooner than ttl suggests', async () => {
    const { client } = setup((_, time) => {
      const expires_at = new Date(time.now() + 300_000).toISOString();
      return json(200, { token: 't', identity: 'a', app: 'web', grants: [], ttl: 600, expires_at });
    });
    await client.start();
    assert.equal(client.current.expiresAt - START, 300_000);
  });

  it('does not refresh in a loop when the device clock is ahead of the server', async () => {
    const { client, time, calls } = setup(() =>
      // expires_at is already in the past by the (wrong) local clock
      json(200, { token: 't', identity: 'a', app: 'web', grants: [], ttl: 600, expires_at: '2026-11-26T11:00:00Z' }),
    );
    await client.start();
    assert.equal(client.current.expiresAt - START, 600_000);
    await time.advance(60_000);
    assert.equal(calls.length, 1);
  });

  it('waits Retry-After on 429, then gets the token', async () => {
    const { client, time, calls, seen } = setup((n, time) =>
      n === 1 ? problem(429, 'rate_limited', { 'Retry-After': '7' }) : tokenResponse(time),
    );
    const started = client.start();
    await time.advance(0);
    assert.equal(seen.retries.length, 1);
    assert.equal(seen.retries[0].error.code, 'rate_limited');
    assert.equal(seen.retries[0].error.retryAfterMs, 7_000);
    assert.ok(seen.retries[0].delayMs >= 7_000);
    await time.advance(6_999);
    assert.equal(calls.length, 1, 'came back before Retry-After');
    await time.advance(1_000);
    assert.equal(calls.length, 2);
    assert.equal((await started).identity, 'alice');
    assert.equal(seen.errors.length, 0);
  });

  it('backs off exponentially on 503 and gives up after maxRetries, until woken', async () => {
    let healthy = false;
    const { client, time, calls, seen } = setup(
      (_, time) => (healthy ? tokenResponse(time) : problem(503, 'unavailable')),
      { maxRetries: 3 },
    );
    const started = client.start().catch((e) => e);
    await time.advance(600_000);
    const error = await started;
    assert.equal(error.code, 'unavailable');
    assert.equal(error.retryable, true);
    assert.equal(error.fatal, true);
    assert.equal(calls.length, 4);
    // random() = 0.5: 75% of 1 s, 2 s, 4 s
    assert.deepEqual(seen.retries.map((r) => r.delayMs), [750, 1500, 3000]);
    assert.equal(client.state, 'waiting');
    assert.equal(time.pending(), 0);
    healthy = true;
    await client.refreshIfStale(); // e.g. the 'online' event
    assert.equal(client.state, 'running');
    assert.equal(calls.length, 5);
  });

  it('retries network and CORS failures with backoff', async () => {
    const { client, time, calls } = setup((n, time) => {
      if (n === 1) throw new TypeError('Failed to fetch');
      return tokenResponse(time);
    });
    const started = client.start();
    await time.advance(1_000);
    assert.equal(calls.length, 2);
    assert.equal((await started).token, 'eyJ.fake.token');
  });

  it('retries a 401 once with a fresh IdP token, then stops for good', async () => {
    const { client, time, calls, idpCalls, seen } = setup(() => problem(401, 'unauthenticated'));
    const error = await client.start().catch((e) => e);
    assert.equal(error.status, 401);
    assert.deepEqual(idpCalls, [{ forceRefresh: false }, { forceRefresh: true }]);
    assert.equal(client.state, 'halted');
    await time.advance(3_600_000);
    await client.refreshIfStale();
    assert.equal(calls.length, 2, 'kept asking after 401');
    assert.equal(seen.errors.length, 1);
    assert.equal(seen.errors[0].requestId, 'req-1');
  });

  it('gets through when the fresh IdP token works after a 401', async () => {
    const { client, idpCalls } = setup((n, time) =>
      n === 1 ? problem(401, 'unauthenticated') : tokenResponse(time),
    );
    assert.equal((await client.start()).identity, 'alice');
    assert.equal(idpCalls.length, 2);
  });

  for (const [status, code] of [
    [403, 'grant_not_allowed'],
    [403, 'origin_not_allowed'],
    [400, 'invalid_request'],
    [404, 'unknown_app'],
  ]) {
    it(`stops at once on ${status} ${code}`, async () => {
      const { client, time, calls } = setup(() => problem(status, code));
      const error = await client.start().catch((e) => e);
      assert.equal(error.code, code);
      assert.equal(error.retryable, false);
      await time.advance(3_600_000);
      assert.equal(calls.length, 1);
      assert.equal(client.state, 'halted');
      assert.equal(time.pending(), 0);
    });
  }

  it('stops when the identity provider has no token for the user', async () => {
    const { client, calls } = setup(() => assert.fail('fetch without an IdP token'), {
      getIdpToken: async () => {
        throw new Error('login required');
      },
    });
    const error = await client.start().catch((e) => e);
    assert.equal(error.code, 'idp_error');
    assert.equal(calls.length, 0);
    assert.equal(client.state, 'halted');
  });

  it('behind a backend-for-frontend sends no Authorization, and stops on its first 401', async () => {
    const { client, calls } = setup(() => problem(401, 'unauthenticated'), {
      url: '/api/twilio-token',
      getIdpToken: undefined,
      credentials: 'same-origin',
    });
    const error = await client.start().catch((e) => e);
    assert.equal(error.status, 401);
    assert.equal(calls.length, 1);
    assert.deepEqual(calls[0].init.headers, { 'Content-Type': 'application/json' });
    assert.equal(calls[0].init.credentials, 'same-origin');
  });

  it('shares one request among concurrent callers', async () => {
    const { client, calls } = setup((_, time) => tokenResponse(time));
    const [a, b] = await Promise.all([client.refresh(), client.refresh()]);
    assert.equal(a, b);
    assert.equal(calls.length, 1);
  });

  it('hands the cached token out while it is valid long enough', async () => {
    const { client, time, calls } = setup((_, time) => tokenResponse(time));
    await client.start();
    await client.getToken(60_000);
    assert.equal(calls.length, 1);
    await time.advance(100_000);
    client.stop();
    await client.getToken(510_000);
    assert.equal(calls.length, 2);
  });

  it('drops an answer that arrives after stop()', async () => {
    let release;
    const { client, time, seen } = setup(
      (_, time) => new Promise((resolve) => (release = () => resolve(tokenResponse(time)))),
    );
    const started = client.start().catch((e) => e);
    await flush();
    client.stop();
    release();
    assert.equal((await started).code, 'stopped');
    assert.equal(seen.tokens.length, 0);
    assert.equal(seen.errors.length, 0);
    assert.equal(time.pending(), 0);
  });

  it("fetches a new token when a Twilio SDK emits tokenWillExpire, and hands it over via onToken", async () => {
    const { client, calls, seen } = setup((n, time) => tokenResponse(time, { token: `t${n}` }));
    await client.start();
    const listeners = {};
    const sdk = {
      on: (event, fn) => (listeners[event] = fn),
      off: (event) => delete listeners[event],
    };
    const detach = refreshOnSdkEvent(client, sdk, 'tokenWillExpire');
    listeners.tokenWillExpire();
    await flush();
    assert.equal(calls.length, 2);
    assert.deepEqual(seen.tokens.map((t) => t.token), ['t1', 't2']);
    detach();
    assert.equal(listeners.tokenWillExpire, undefined);
  });
});

describe('parseRetryAfter', () => {
  it('reads delay-seconds and HTTP-dates', () => {
    assert.equal(parseRetryAfter('3'), 3_000);
    assert.equal(parseRetryAfter(' 0 '), 0);
    assert.equal(parseRetryAfter('Thu, 26 Nov 2026 12:00:30 GMT', START), 30_000);
    assert.equal(parseRetryAfter('Thu, 26 Nov 2026 11:00:00 GMT', START), 0);
  });

  it('ignores what it cannot read', () => {
    assert.equal(parseRetryAfter(null), undefined);
    assert.equal(parseRetryAfter(''), undefined);
    assert.equal(parseRetryAfter('soon'), undefined);
  });
});
