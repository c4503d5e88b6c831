// tokenmint's CORS, proven in a real browser, through the example page of examples/web/.
//
// Starts, on 127.0.0.1 only: tokenmint with its built-in demo configuration (127.0.0.1:8080,
// from target/release/tokenmint, or $TOKENMINT_BIN), the example page server on port 3000 (an
// allowed origin, as http://localhost:3000 and http://127.0.0.1:3000) and a second one on port
// 3001 (an origin no app allows), then headless Chromium ($CHROMIUM, default /usr/bin/chromium)
// driven by playwright-core. Everything is stopped at the end, whatever happened.
//
// What the page's script can see is checked in the page; what only the browser knows (the
// preflight, why a request was blocked, which cookies went out) through the DevTools protocol.
// The page of the first test is saved as docs/images/web-example.png for the README.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync } from 'node:fs';
import net from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

import { idpToken, serve } from '../../examples/web/server.mjs';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = process.env.TOKENMINT_BIN ?? join(REPO, 'target/release/tokenmint');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const SCREENSHOT = join(REPO, 'docs/images/web-example.png');
const LOG = join(REPO, 'target/browser-tests/tokenmint.log');

const TOKENMINT = 'http://127.0.0.1:8080';
const PAGE = 'http://127.0.0.1:3000'; // allowed by the demo apps web and web-cookies
const PAGE_LOCALHOST = 'http://localhost:3000'; // allowed too
const OTHER = 'http://127.0.0.1:3001'; // allowed by no app

// From config/default.toml: the demo account's API Key secret signs every token.
const DEMO_KEY_SECRET = 'demo-api-key-secret-not-for-production';
const DEMO_KEY_SID = 'SK00000000000000000000000000000000';
const DEMO_ACCOUNT_SID = 'AC00000000000000000000000000000000';

// A closed network: without these Chromium keeps trying to reach Google's services.
const CHROMIUM_FLAGS = [
  '--no-sandbox', // CI runs as root
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

let tokenmint;
let pageServers = [];
let browser;

/** Resolves when nothing listens on 127.0.0.1:port, rejects when something does. */
function assertPortFree(port) {
  return new Promise((resolvePromise, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      reject(new Error(`127.0.0.1:${port} is already in use; stop what listens there first`));
    });
    socket.once('error', () => resolvePromise());
  });
}

async function startTokenmint() {
  if (!existsSync(BIN)) {
    throw new Error(`${BIN} is missing: run \`cargo build --release --locked\` first`);
  }
  await assertPortFree(8080);
  mkdirSync(dirname(LOG), { recursive: true });
  const log = createWriteStream(LOG);
  // Only the built-in demo configuration: no file, no TOKENMINT__* overrides from outside.
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith('TOKENMINT')),
  );
  const child = spawn(BIN, [], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  const exited = new Promise((resolvePromise) => child.once('exit', resolvePromise));
  child.exited = exited;
  const deadline = Date.now() + 20_000;
  for (;;) {
    const status = await Promise.race([
      fetch(`${TOKENMINT}/readyz`).then((r) => r.status, () => 0),
      exited.then((code) => `exited with ${code}`),
    ]);
    if (status === 200) return child;
    if (typeof status === 'string') throw new Error(`tokenmint ${status}; see ${LOG}`);
    if (Date.now() > deadline) throw new Error(`tokenmint not ready after 20 s; see ${LOG}`);
    await sleep(100);
  }
}

async function stopTokenmint(child) {
  if (!child || child.exitCode !== null) return;
  child.kill('SIGTERM');
  const code = await Promise.race([child.exited, sleep(5_000).then(() => 'timeout')]);
  if (code === 'timeout') child.kill('SIGKILL');
}

before(async () => {
  tokenmint = await startTokenmint();
  process.once('exit', () => tokenmint?.kill('SIGKILL')); // even if the run is cut short
  for (const port of [3000, 3001]) pageServers.push(await serve({ port }));
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_FLAGS, // a fresh temporary profile (user-data-dir) for each launch
    timeout: 30_000,
  });
});

after(async () => {
  await browser?.close();
  for (const server of pageServers) {
    server.closeAllConnections();
    await new Promise((resolvePromise) => server.close(resolvePromise));
  }
  await stopTokenmint(tokenmint);
});

/**
 * A page in a fresh browser context (own cookies, own preflight cache), with the network
 * events of the DevTools protocol recorded.
 */
async function open(t, url, { cookies = [] } = {}) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  t.after(() => context.close());
  await context.addCookies(cookies);
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  const consoleErrors = [];
  page.on('console', (message) => message.type() === 'error' && consoleErrors.push(message.text()));
  page.on('pageerror', (error) => consoleErrors.push(`uncaught: ${error.message}`));
  const network = await watchNetwork(context, page);
  await page.goto(url);
  return { page, network, consoleErrors };
}

async function watchNetwork(context, page) {
  const cdp = await context.newCDPSession(page);
  const seen = new Map();
  const entry = (id) => seen.get(id) ?? seen.set(id, { id }).get(id);
  const lower = (headers = {}) =>
    Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
  cdp.on('Network.requestWillBeSent', (e) =>
    Object.assign(entry(e.requestId), {
      url: e.request.url,
      method: e.request.method,
      preflight: e.initiator?.type === 'preflight',
    }),
  );
  // The headers as sent, cookies included.
  cdp.on('Network.requestWillBeSentExtraInfo', (e) => {
    entry(e.requestId).sent = lower(e.headers);
  });
  // The answer as it arrived, even when CORS then hides it from the page.
  cdp.on('Network.responseReceivedExtraInfo', (e) =>
    Object.assign(entry(e.requestId), { status: e.statusCode, received: lower(e.headers) }),
  );
  cdp.on('Network.loadingFailed', (e) =>
    Object.assign(entry(e.requestId), {
      done: true,
      failed: e.errorText,
      corsError: e.corsErrorStatus?.corsError,
    }),
  );
  cdp.on('Network.loadingFinished', (e) => {
    entry(e.requestId).done = true;
  });
  await cdp.send('Network.enable');
  const toTokenmint = () => [...seen.values()].filter((r) => r.url?.startsWith(TOKENMINT));
  const preflights = () => toTokenmint().filter((r) => r.preflight);
  const requests = (method) => toTokenmint().filter((r) => !r.preflight && r.method === method);
  /** Polls until `find()` returns something: protocol events may arrive a little after the
   * page has seen its fetch settle. */
  const until = async (what, find) => {
    const deadline = Date.now() + 5_000;
    for (;;) {
      const found = find();
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`the browser reported no ${what}`);
      await sleep(20);
    }
  };
  return {
    preflights,
    requests,
    /** The first preflight to tokenmint, once its answer is in. */
    preflight: () => until('preflight answer', () => preflights().find((r) => r.received)),
    /** The first `method` request to tokenmint, once the browser is done with it. */
    settled: (method) => until(`finished ${method}`, () => requests(method).find((r) => r.done)),
  };
}

const ready = (page) => page.locator('#status[data-state="ready"]').waitFor();
const demo = (page) => page.evaluate(() => {
  const { client, device, events } = window.tokenmintDemo;
  return { token: client.current, state: client.state, updates: device.updates, events };
});

/** The page's own attempt at a fetch: 'status NNN' when it could read an answer. */
const tryFetch = (page, url, init) =>
  page.evaluate(
    ([url, init]) =>
      fetch(url, init).then(
        (r) => `status ${r.status}`,
        (e) => `${e.name}: ${e.message}`,
      ),
    [url, init],
  );

/** Verifies a Twilio Access Token with the demo API Key secret; returns header and payload. */
function verifyTwilioToken(token) {
  const [header, payload, signature] = token.split('.');
  const expected = createHmac('sha256', DEMO_KEY_SECRET).update(`${header}.${payload}`).digest('base64url');
  assert.equal(signature, expected, 'signature does not verify with the demo API Key secret');
  const decode = (part) => JSON.parse(Buffer.from(part, 'base64url').toString());
  return { header: decode(header), payload: decode(payload) };
}

describe('tokenmint from a browser (headless Chromium)', () => {
  it('the example page on an allowed origin gets a token that verifies', { timeout: 30_000 }, async (t) => {
    const { page, consoleErrors } = await open(t, `${PAGE_LOCALHOST}/`);
    await ready(page);
    const { token } = await demo(page);

    assert.equal(token.app, 'web');
    assert.equal(token.identity, 'alice');
    assert.deepEqual(token.grants, ['chat', 'sync', 'voice']);
    assert.equal(token.ttl, 600);
    const { header, payload } = verifyTwilioToken(token.token);
    assert.deepEqual(header, { alg: 'HS256', cty: 'twilio-fpa;v=1', typ: 'JWT' });
    assert.equal(payload.iss, DEMO_KEY_SID);
    assert.equal(payload.sub, DEMO_ACCOUNT_SID);
    assert.match(payload.jti, new RegExp(`^${DEMO_KEY_SID}-[0-9a-f]{32}$`));
    assert.equal(payload.grants.identity, 'alice');
    assert.deepEqual(Object.keys(payload.grants).sort(), ['chat', 'data_sync', 'identity', 'voice']);
    assert.equal(payload.exp - payload.nbf, 600);
    assert.equal(payload.exp, Date.parse(token.expires_at) / 1000);
    // The page refreshes ahead of expiry: 80% into a 10-minute token.
    assert.ok(Math.abs(token.expiresAt - token.refreshAt - 120_000) < 1_000);

    // What a person sees: decoded claims, and only the ends of the token itself.
    assert.equal(await page.textContent('#identity'), 'alice');
    assert.match(await page.textContent('#payload'), /"identity": "alice"/);
    const shown = await page.textContent('#token');
    assert.ok(shown.includes('…') && !shown.includes(token.token));
    assert.deepEqual(consoleErrors, []);

    mkdirSync(dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
  });

  it('the preflight names the page origin, the allowed headers and a 10-minute max-age, and is reused', { timeout: 30_000 }, async (t) => {
    const { page, network, consoleErrors } = await open(t, `${PAGE}/`, {
      cookies: [{ name: 'session', value: 'not-for-tokenmint', domain: '127.0.0.1', path: '/' }],
    });
    await ready(page);

    const preflight = await network.preflight();
    assert.equal(network.preflights().length, 1);
    assert.equal(preflight.method, 'OPTIONS');
    assert.equal(preflight.sent['access-control-request-method'], 'POST');
    assert.equal(preflight.sent['access-control-request-headers'], 'authorization,content-type');
    const answer = preflight.received;
    assert.equal(answer['access-control-allow-origin'], PAGE);
    assert.deepEqual(answer['access-control-allow-methods'].split(',').sort(), ['GET', 'POST']);
    assert.deepEqual(answer['access-control-allow-headers'].split(',').sort(), [
      'authorization',
      'content-type',
      'x-request-id',
    ]);
    assert.equal(answer['access-control-max-age'], '600'); // Chromium caps it at 7200
    assert.equal(answer['access-control-allow-credentials'], undefined);
    assert.match(answer.vary, /origin/i);

    // The token request itself: no cookies by default, the origin echoed, headers exposed.
    const post = await network.settled('POST');
    assert.equal(post.status, 200);
    assert.equal(post.sent.cookie, undefined, 'a cookie went out with credentials omitted');
    assert.match(post.sent.authorization, /^Bearer ey/);
    assert.equal(post.received['access-control-allow-origin'], PAGE);
    assert.deepEqual(post.received['access-control-expose-headers'].split(',').sort(), [
      'retry-after',
      'www-authenticate',
      'x-request-id',
    ]);
    // Within max-age, the next refresh (here the SDK's tokenWillExpire) sends no preflight.
    await page.click('#simulate');
    await page.waitForFunction(() => window.tokenmintDemo.device.updates === 2);
    assert.equal(network.requests('POST').length, 2);
    assert.equal(network.preflights().length, 1);

    // The exposed headers are readable by the page's script.
    const readable = await page.evaluate(async (url) => {
      const idp = await (await fetch('/idp/token?user=alice')).json();
      const r = await fetch(url, {
        method: 'POST',
        headers: { Authorization: `Bearer ${idp.access_token}`, 'X-Request-Id': 'browser-test-1' },
      });
      return { requestId: r.headers.get('X-Request-Id'), cacheControl: r.headers.get('Cache-Control') };
    }, `${TOKENMINT}/apps/web/token`);
    assert.deepEqual(readable, { requestId: 'browser-test-1', cacheControl: 'no-store' });
    assert.deepEqual(consoleErrors, []);
    // So is the challenge of a 401, by which a client decides to get a new IdP token.
    const challenge = await page.evaluate(async (url) => {
      const r = await fetch(url, { method: 'POST', headers: { Authorization: 'Bearer expired' } });
      return [r.status, r.headers.get('WWW-Authenticate')];
    }, `${TOKENMINT}/apps/web/token`);
    assert.deepEqual(challenge, [401, 'Bearer error="invalid_token"']);
  });

  it('a page on an origin the app does not list is blocked by the browser', { timeout: 30_000 }, async (t) => {
    const { page, network } = await open(t, `${OTHER}/`);
    await page.locator('#status[data-state="retrying"]').waitFor();
    await page.click('#stop');
    const { events, token } = await demo(page);
    assert.equal(token, null);
    assert.ok(events.some((e) => e.text.startsWith('network or CORS error')), JSON.stringify(events));

    // The preflight got no Access-Control-Allow-Origin, so the POST was never sent.
    const preflight = await network.preflight();
    assert.equal(preflight.status, 200);
    assert.equal(preflight.received['access-control-allow-origin'], undefined);
    const post = await network.settled('POST');
    assert.equal(post.corsError, 'PreflightMissingAllowOriginHeader');
    assert.equal(post.status, undefined);

    // A simple GET needs no preflight: tokenmint refuses it (403) and the browser hides even that.
    assert.equal(await tryFetch(page, `${TOKENMINT}/apps/web/token`), 'TypeError: Failed to fetch');
    const get = await network.settled('GET');
    assert.equal(get.status, 403);
    assert.equal(get.corsError, 'MissingAllowOriginHeader');
    const direct = await fetch(`${TOKENMINT}/apps/web/token`, { headers: { Origin: OTHER } });
    assert.equal(direct.status, 403);
    assert.equal((await direct.json()).code, 'origin_not_allowed');
  });

  it("origins are per app: an allowed page cannot call an app that does not list it", { timeout: 30_000 }, async (t) => {
    const { page, network } = await open(t, `${PAGE}/?autostart=0`);
    const outcome = await tryFetch(page, `${TOKENMINT}/apps/mobile/token`, {
      method: 'POST',
      headers: { Authorization: 'Bearer x' },
    });
    assert.equal(outcome, 'TypeError: Failed to fetch');
    assert.equal((await network.settled('POST')).corsError, 'PreflightMissingAllowOriginHeader');
  });

  it("credentials: 'include' is refused for an app without cors_allow_credentials", { timeout: 30_000 }, async (t) => {
    const { page, network } = await open(t, `${PAGE}/?app=web&credentials=include`);
    await page.locator('#status[data-state="retrying"]').waitFor();
    await page.click('#stop');
    const preflight = await network.preflight();
    assert.equal(preflight.received['access-control-allow-origin'], PAGE);
    assert.equal(preflight.received['access-control-allow-credentials'], undefined);
    assert.equal((await network.settled('POST')).corsError, 'PreflightInvalidAllowCredentials');
  });

  it("credentials: 'include' works for an app with cors_allow_credentials = true", { timeout: 30_000 }, async (t) => {
    const { page, network, consoleErrors } = await open(t, `${PAGE}/?app=web-cookies&credentials=include`, {
      cookies: [{ name: 'session', value: 'for-the-gateway', domain: '127.0.0.1', path: '/' }],
    });
    await ready(page);
    const { token } = await demo(page);
    assert.equal(token.app, 'web-cookies');
    assert.deepEqual(token.grants, ['sync']);
    assert.equal((await network.preflight()).received['access-control-allow-credentials'], 'true');
    const post = await network.settled('POST');
    assert.equal(post.sent.cookie, 'session=for-the-gateway');
    assert.equal(post.received['access-control-allow-credentials'], 'true');
    assert.equal(post.received['access-control-allow-origin'], PAGE);
    assert.deepEqual(consoleErrors, []);
  });

  it('on 429 the page reads Retry-After, waits that long, then gets its token', { timeout: 40_000 }, async (t) => {
    // The demo apps allow 60 tokens a minute per caller, refilled one a second. A flood from
    // here, as the same caller and from several connections at once, takes each refill within
    // a fraction of a millisecond, so the page's request is refused until the flood stops.
    const user = `burst_${process.pid}_${Date.now()}`; // a fresh bucket; voice allows no '-'
    const { page } = await open(t, `${PAGE}/?user=${user}&autostart=0`);
    const authorization = `Bearer ${idpToken(user)}`;
    let flooding = true;
    let limited;
    const drained = new Promise((resolvePromise) => (limited = resolvePromise));
    const floodOne = async () => {
      const deadline = Date.now() + 20_000;
      while (flooding && Date.now() < deadline) {
        const r = await fetch(`${TOKENMINT}/apps/web/token`, { method: 'POST', headers: { authorization } });
        await r.arrayBuffer();
        if (r.status === 429) limited();
      }
    };
    const flood = Promise.all([floodOne(), floodOne(), floodOne()]);
    t.after(() => (flooding = false));
    await drained;
    await page.click('#start');
    await page.waitForFunction(() => window.tokenmintDemo.events.some((e) => e.text.startsWith('429')));
    flooding = false;
    await flood;
    await ready(page);

    const { events, token } = await demo(page);
    assert.equal(token.identity, user);
    const refused = events.find((e) => e.text.startsWith('429'));
    assert.match(refused.text, /^429 rate_limited: retrying in \d+\.\d s \(Retry-After \d+ s\)/);
    const retryAfter = Number(/Retry-After (\d+) s/.exec(refused.text)[1]);
    assert.ok(retryAfter >= 1);
    const minted = events.find((e) => e.text.startsWith('200'));
    assert.ok(Date.parse(minted.at) - Date.parse(refused.at) >= retryAfter * 1000 - 50, JSON.stringify(events));
  });

  it('on 401 the page tries one fresh IdP token, then stops instead of retrying', { timeout: 30_000 }, async (t) => {
    const { page, network } = await open(t, `${PAGE}/?user=eve&expired=1`);
    await page.locator('#status[data-state="stopped"]').waitFor();
    await sleep(1_500); // longer than the first backoff would have been
    const { events, state } = await demo(page);
    assert.equal(state, 'halted');
    assert.deepEqual(
      network.requests('POST').map((r) => r.status),
      [401, 401],
    );
    assert.ok(events.some((e) => e.text === '401 unauthenticated: retrying once with a fresh IdP token [attempt 1]'));
    assert.match(events.at(-1).text, /^401 unauthenticated: .* — stopped, not retrying$/);
  });

  it('on 403 the page stops at once', { timeout: 30_000 }, async (t) => {
    const { page, network } = await open(t, `${PAGE}/?grants=task_router`);
    await page.locator('#status[data-state="stopped"]').waitFor();
    await sleep(1_500);
    assert.deepEqual(network.requests('POST').map((r) => r.status), [403]);
    const { events } = await demo(page);
    assert.match(events.at(-1).text, /^403 grant_not_allowed: /);
  });

  it("a page cannot send the gateway's identity header, even from an allowed origin on loopback", { timeout: 30_000 }, async (t) => {
    // The demo app believes X-Authenticated-User from loopback peers, and this browser is one.
    // CORS is what keeps a web page from using that: the header is not on the allowed list.
    const { page, network } = await open(t, `${PAGE}/?autostart=0`);
    const outcome = await tryFetch(page, `${TOKENMINT}/token`, {
      method: 'POST',
      headers: { 'X-Authenticated-User': 'mallory' },
    });
    assert.equal(outcome, 'TypeError: Failed to fetch');
    const post = await network.settled('POST');
    assert.equal(post.corsError, 'HeaderDisallowedByPreflightResponse');
    assert.equal(post.status, undefined, 'the request reached tokenmint');
  });
});
