// End to end against a real OpenID provider: oidc-provider (npm) on 127.0.0.1 with its dev
// interactions, a user who logs in and consents through plain HTTP requests (cookies, the login
// form, the consent form), an authorization code exchanged for a JWT access token (`at+jwt`,
// RS256, audience = the tokenmint resource indicator), and the release tokenmint verifying it
// against the provider's own remote JWKS. The minted Twilio token is checked with Twilio's Python
// library (check_twilio_token.py). Then: a token for another resource is refused, and a provider
// key rotation makes tokenmint refetch the key set once and verify the new `kid`.
//
// Run by .ci/oidc.sh (`node --test`), which provides TOKENMINT_BIN (the release binary) and
// OIDC_PYTHON (a venv's python with `twilio`). Every server is started here, on 127.0.0.1 only,
// and stopped in `after`; every test has a timeout.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, createSign, generateKeyPairSync, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:http';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';

import Provider, { errors } from 'oidc-provider';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..', '..');
const BIN = process.env.TOKENMINT_BIN ?? path.join(ROOT, 'target', 'release', 'tokenmint');
const PYTHON = process.env.OIDC_PYTHON;
const TIMEOUT = 30_000;

// The resource indicator (RFC 8707) tokenmint accepts as audience (tests/oidc/tokenmint.toml), and
// another resource server of the same provider whose tokens tokenmint must refuse.
const RESOURCE = 'https://tokenmint.e2e.test';
const OTHER_RESOURCE = 'https://reports.e2e.test';
const VOICE_SCOPE = 'twilio:voice';
const USER = 'alice_oidc';
const CLIENT = {
  id: 'tokenmint-e2e-web',
  secret: randomBytes(24).toString('hex'),
  redirect: 'http://127.0.0.1/callback', // never requested: the test reads the redirect
};
const TWILIO_KEY_SECRET = randomBytes(32).toString('hex');
const COOKIE_KEY = randomBytes(32).toString('hex');
const APP_TTL = 600; // apps.web.ttl

const b64url = (buffer) => Buffer.from(buffer).toString('base64url');
const sha256 = (text) => createHash('sha256').update(text).digest();

/** A private RS256 signing JWK, as the provider's `jwks` configuration takes it. */
function signingKey(kid) {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid, use: 'sig', alg: 'RS256' };
}

function decodeJwt(token) {
  const [header, payload] = token.split('.').slice(0, 2)
    .map((part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8')));
  return { header, payload };
}

/** An oidc-provider instance with dev interactions and JWT access tokens per resource. */
function makeProvider(issuer, keys) {
  const resourceServers = {
    [RESOURCE]: { scope: VOICE_SCOPE },
    [OTHER_RESOURCE]: { scope: 'reports:read' },
  };
  const provider = new Provider(issuer, {
    clients: [{
      client_id: CLIENT.id,
      client_secret: CLIENT.secret,
      redirect_uris: [CLIENT.redirect],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    jwks: { keys },
    cookies: { keys: [COOKIE_KEY] },
    pkce: { required: () => true },
    // The dev interactions log in any name with any password; the name becomes `sub`.
    findAccount: (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
    features: {
      devInteractions: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => undefined,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, indicator) => {
          const server = resourceServers[indicator];
          if (!server) throw new errors.InvalidTarget();
          return {
            ...server,
            audience: indicator,
            accessTokenTTL: 300,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
  });
  return provider;
}

/** Just enough of a browser: a cookie jar, manual redirects, form posts. */
class Browser {
  constructor() {
    this.cookies = new Map();
  }

  async request(url, { method = 'GET', form } = {}) {
    const headers = {};
    if (this.cookies.size) {
      headers.cookie = [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
    }
    let body;
    if (form) {
      body = new URLSearchParams(form).toString();
      headers['content-type'] = 'application/x-www-form-urlencoded';
    }
    const response = await fetch(url, { method, headers, body, redirect: 'manual' });
    for (const cookie of response.headers.getSetCookie()) {
      const [pair, ...attributes] = cookie.split(';').map((s) => s.trim());
      const at = pair.indexOf('=');
      const name = pair.slice(0, at);
      const value = pair.slice(at + 1);
      const expired = value === '' || attributes.some((a) => /^expires=.*1970/i.test(a));
      if (expired) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return response;
  }
}

const unescapeHtml = (s) => s.replace(/&#x2F;/g, '/').replace(/&#39;/g, "'").replace(/&quot;/g, '"')
  .replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');

/** The first POST form of a page: its action and hidden fields. */
function parseForm(html) {
  const form = /<form\b[^>]*\baction="([^"]*)"[^>]*\bmethod="post"[^>]*>([\s\S]*?)<\/form>/i.exec(html);
  assert.ok(form, `no form in the page:\n${html.slice(0, 2000)}`);
  const fields = {};
  for (const input of form[2].matchAll(/<input\b[^>]*>/gi)) {
    const name = /\bname="([^"]*)"/.exec(input[0])?.[1];
    const value = /\bvalue="([^"]*)"/.exec(input[0])?.[1];
    if (name && /\btype="hidden"/.test(input[0])) fields[name] = unescapeHtml(value ?? '');
    else if (name) fields[name] = '';
  }
  return { action: unescapeHtml(form[1]), fields };
}

// --- Shared state, set up in `before` ------------------------------------------------------

let providerServer;
let handler; // the current provider's request handler: a key rotation swaps it
let issuer;
let discovery;
let jwksRequests = 0;
const keys = { first: signingKey('key-2026-01'), second: signingKey('key-2026-02') };

let tokenmint; // { child, url, log() }
const seenTokens = []; // every access token and Twilio token, for the log check

async function startProvider() {
  providerServer = createServer((req, res) => {
    if (req.method === 'GET' && new URL(req.url, issuer).pathname === '/jwks') jwksRequests += 1;
    handler(req, res);
  });
  providerServer.listen(0, '127.0.0.1');
  await once(providerServer, 'listening');
  issuer = `http://127.0.0.1:${providerServer.address().port}`;
  handler = makeProvider(issuer, [keys.first]).callback();
  discovery = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
}

async function startTokenmint() {
  const env = Object.fromEntries(Object.entries(process.env)
    .filter(([name]) => !name.startsWith('TOKENMINT')));
  Object.assign(env, {
    OIDC_ISSUER: discovery.issuer,
    OIDC_JWKS_URL: discovery.jwks_uri,
    OIDC_TWILIO_KEY_SECRET: TWILIO_KEY_SECRET,
  });
  const child = spawn(BIN, ['serve', '--config', path.join(HERE, 'tokenmint.toml')], {
    env, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout.on('data', (chunk) => { log += chunk; });
  child.stderr.on('data', (chunk) => { log += chunk; });
  const exited = once(child, 'exit');
  let address;
  for (let i = 0; i < 100 && !address; i += 1) {
    address = /"message":"listening","address":"(127\.0\.0\.1:\d+)"/.exec(log)?.[1];
    if (!address) await sleep(100);
  }
  assert.ok(address, `tokenmint did not start:\n${log}`);
  return { child, exited, url: `http://${address}`, log: () => log };
}

async function stopTokenmint() {
  if (!tokenmint || tokenmint.child.exitCode !== null) return;
  tokenmint.child.kill('SIGTERM');
  const stopped = await Promise.race([
    tokenmint.exited.then(() => true),
    sleep(5000, false, { ref: false }),
  ]);
  if (!stopped) tokenmint.child.kill('SIGKILL');
}

/** Logs USER in through the provider's pages and returns the token endpoint's answer. */
async function login({ resource, scope }) {
  const browser = new Browser();
  const verifier = b64url(randomBytes(32));
  const state = b64url(randomBytes(12));
  const authorize = new URL(discovery.authorization_endpoint);
  authorize.search = new URLSearchParams({
    client_id: CLIENT.id,
    response_type: 'code',
    redirect_uri: CLIENT.redirect,
    scope,
    resource,
    state,
    code_challenge: b64url(sha256(verifier)),
    code_challenge_method: 'S256',
  }).toString();

  const prompts = [];
  let url = authorize.href;
  let response = await browser.request(url);
  let callback;
  for (let hops = 0; hops < 12 && !callback; hops += 1) {
    if (response.status === 200) {
      // An interaction page: fill in and submit its form like a user would.
      const { action, fields } = parseForm(await response.text());
      prompts.push(fields.prompt);
      if (fields.prompt === 'login') Object.assign(fields, { login: USER, password: 'any password' });
      else assert.equal(fields.prompt, 'consent', `unexpected prompt ${fields.prompt}`);
      url = new URL(action, url).href;
      response = await browser.request(url, { method: 'POST', form: fields });
      continue;
    }
    assert.ok([302, 303].includes(response.status),
      `${url} answered ${response.status}: ${await response.text()}`);
    const next = new URL(response.headers.get('location'), url);
    if (next.href.startsWith(CLIENT.redirect)) {
      callback = next;
      break;
    }
    url = next.href;
    response = await browser.request(url);
  }
  assert.ok(callback, 'the authorization flow never came back to the client');
  assert.equal(callback.searchParams.get('error'), null, callback.href);
  assert.equal(callback.searchParams.get('state'), state);
  assert.equal(callback.searchParams.get('iss'), issuer); // RFC 9207

  const tokenResponse = await fetch(discovery.token_endpoint, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${CLIENT.id}:${CLIENT.secret}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code: callback.searchParams.get('code'),
      redirect_uri: CLIENT.redirect,
      code_verifier: verifier,
      resource,
    }).toString(),
  });
  const tokens = await tokenResponse.json();
  assert.equal(tokenResponse.status, 200, JSON.stringify(tokens));
  seenTokens.push(tokens.access_token);
  return { tokens, prompts };
}

async function mint(accessToken, query = '') {
  const response = await fetch(`${tokenmint.url}/token${query}`, {
    method: query ? 'GET' : 'POST',
    headers: { authorization: `Bearer ${accessToken}` },
  });
  const body = await response.json();
  if (body.token) seenTokens.push(body.token);
  return { status: response.status, headers: response.headers, body };
}

/** tokenmint_jwks_refresh_total{auth="oidc",result="ok"}: successful JWKS fetches. */
async function jwksFetches() {
  const text = await (await fetch(`${tokenmint.url}/metrics`)).text();
  for (const [, labels, value] of text.matchAll(/^tokenmint_jwks_refresh_total\{([^}]*)\} (\d+)/gm)) {
    if (labels.includes('auth="oidc"') && labels.includes('result="ok"')) return Number(value);
  }
  return 0;
}

/** Twilio's Python library verifies the token and builds the same grants (exit 0, "ok"). */
async function checkWithTwilioPython(token, grants) {
  assert.ok(PYTHON, 'OIDC_PYTHON must name a python with the twilio package (.ci/oidc.sh sets it)');
  const child = spawn(PYTHON, [path.join(HERE, 'check_twilio_token.py')], {
    env: { ...process.env, OIDC_TWILIO_KEY_SECRET: TWILIO_KEY_SECRET },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk) => { output += chunk; });
  child.stderr.on('data', (chunk) => { output += chunk; });
  child.stdin.end(JSON.stringify({ token, identity: USER, ttl: APP_TTL, grants }));
  const timer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT);
  const [code] = await once(child, 'exit');
  clearTimeout(timer);
  assert.equal(code, 0, `check_twilio_token.py: ${output}`);
  assert.equal(output.trim(), 'ok');
}

function assertAccessToken(accessToken, { kid, audience, scope }) {
  const { header, payload } = decodeJwt(accessToken);
  assert.equal(header.typ, 'at+jwt');
  assert.equal(header.alg, 'RS256');
  assert.equal(header.kid, kid);
  assert.equal(payload.iss, issuer);
  assert.equal(payload.aud, audience);
  assert.equal(payload.sub, USER);
  assert.equal(payload.client_id, CLIENT.id);
  assert.equal(payload.scope, scope);
  return payload;
}

// --- Tests ---------------------------------------------------------------------------------

before(async () => {
  await startProvider();
  tokenmint = await startTokenmint();
}, { timeout: TIMEOUT });

after(async () => {
  await stopTokenmint();
  if (providerServer) {
    providerServer.closeAllConnections();
    providerServer.close();
  }
});

let firstToken; // the first user's access token, signed with keys.first

test('the provider publishes its issuer and RS256 key set on 127.0.0.1', { timeout: TIMEOUT }, async () => {
  assert.equal(discovery.issuer, issuer);
  assert.equal(discovery.jwks_uri, `${issuer}/jwks`);
  const jwks = await (await fetch(discovery.jwks_uri)).json();
  assert.deepEqual(jwks.keys.map((k) => [k.kid, k.kty, k.alg]), [['key-2026-01', 'RSA', 'RS256']]);
  assert.ok(jwks.keys.every((k) => k.d === undefined), 'the JWKS publishes no private key');
});

test('tokenmint fetches the provider\'s JWKS and becomes ready', { timeout: TIMEOUT }, async () => {
  let status;
  for (let i = 0; i < 50 && status !== 200; i += 1) {
    status = (await fetch(`${tokenmint.url}/readyz`)).status;
    if (status !== 200) await sleep(100);
  }
  assert.equal(status, 200, tokenmint.log());
  assert.equal(await jwksFetches(), 1);
});

test('a user logs in and consents; the provider issues an at+jwt for the tokenmint resource', { timeout: TIMEOUT }, async () => {
  const { tokens, prompts } = await login({ resource: RESOURCE, scope: `openid ${VOICE_SCOPE}` });
  assert.deepEqual(prompts, ['login', 'consent']);
  assert.equal(tokens.token_type, 'Bearer');
  assertAccessToken(tokens.access_token, { kid: 'key-2026-01', audience: RESOURCE, scope: VOICE_SCOPE });
  firstToken = tokens.access_token;
});

test('tokenmint mints a Twilio token for it, which Twilio\'s Python library verifies', { timeout: TIMEOUT }, async () => {
  assert.ok(firstToken, 'needs the login test');
  const { status, headers, body } = await mint(firstToken);
  assert.equal(status, 200, JSON.stringify(body));
  assert.equal(headers.get('cache-control'), 'no-store');
  assert.equal(body.identity, USER);
  assert.equal(body.app, 'web');
  assert.deepEqual(body.grants, ['chat', 'video', 'voice']);
  assert.equal(body.ttl, APP_TTL);
  await checkWithTwilioPython(body.token, body.grants);

  // Explicit grants through GET, too.
  const video = await mint(firstToken, '?grants=video');
  assert.equal(video.status, 200, JSON.stringify(video.body));
  assert.deepEqual(video.body.grants, ['video']);
  await checkWithTwilioPython(video.body.token, ['video']);
  assert.equal(await jwksFetches(), 1, 'a known kid needs no JWKS fetch');
});

test('without the consented twilio:voice scope the user gets no voice grant', { timeout: TIMEOUT }, async () => {
  const { tokens } = await login({ resource: RESOURCE, scope: 'openid' });
  assertAccessToken(tokens.access_token, { kid: 'key-2026-01', audience: RESOURCE, scope: undefined });
  const all = await mint(tokens.access_token);
  assert.equal(all.status, 200, JSON.stringify(all.body));
  assert.deepEqual(all.body.grants, ['chat', 'video']);
  await checkWithTwilioPython(all.body.token, ['chat', 'video']);
  const voice = await mint(tokens.access_token, '?grants=voice');
  assert.equal(voice.status, 403);
  assert.equal(voice.body.code, 'grant_not_allowed');
});

test('an access token for another resource (audience) of the same provider is refused with 401', { timeout: TIMEOUT }, async () => {
  const { tokens } = await login({ resource: OTHER_RESOURCE, scope: 'openid reports:read' });
  assertAccessToken(tokens.access_token, {
    kid: 'key-2026-01', audience: OTHER_RESOURCE, scope: 'reports:read',
  });
  const { status, headers, body } = await mint(tokens.access_token);
  assert.equal(status, 401, JSON.stringify(body));
  assert.equal(body.code, 'unauthenticated');
  assert.equal(headers.get('www-authenticate'), 'Bearer error="invalid_token"');
  assert.equal(body.token, undefined);
});

test('a token signed with a key the provider does not publish is refused with 401', { timeout: TIMEOUT }, async () => {
  // Same issuer, audience, subject and kid as a real token, signed by an attacker's key.
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const { payload } = decodeJwt(firstToken);
  const header = { alg: 'RS256', typ: 'at+jwt', kid: 'key-2026-01' };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify({ ...payload, jti: 'forged' }))}`;
  const signature = createSign('RSA-SHA256').update(input).sign(privateKey);
  const { status, body } = await mint(`${input}.${b64url(signature)}`);
  assert.equal(status, 401, JSON.stringify(body));
  assert.equal(body.code, 'unauthenticated');
});

test('key rotation: a token with the provider\'s new kid makes tokenmint refetch once, then verify', { timeout: TIMEOUT }, async () => {
  // The provider restarts with a new key set: the new key first (it signs from now on), the
  // previous one still published for tokens already issued. Same issuer, same port.
  const before = { fetches: await jwksFetches(), served: jwksRequests };
  handler = makeProvider(issuer, [keys.second, keys.first]).callback();
  const jwks = await (await fetch(discovery.jwks_uri)).json();
  assert.deepEqual(jwks.keys.map((k) => k.kid), ['key-2026-02', 'key-2026-01']);
  const served = jwksRequests; // the fetch just above

  const { tokens } = await login({ resource: RESOURCE, scope: `openid ${VOICE_SCOPE}` });
  assertAccessToken(tokens.access_token, { kid: 'key-2026-02', audience: RESOURCE, scope: VOICE_SCOPE });
  assert.equal(await jwksFetches(), before.fetches, 'nothing fetched before the new kid arrives');

  const first = await mint(tokens.access_token);
  assert.equal(first.status, 200, JSON.stringify(first.body));
  assert.deepEqual(first.body.grants, ['chat', 'video', 'voice']);
  await checkWithTwilioPython(first.body.token, first.body.grants);
  assert.equal(await jwksFetches(), before.fetches + 1, 'exactly one refetch for the new kid');
  assert.equal(jwksRequests, served + 1, 'the provider served the key set exactly once more');

  // Once known, the new kid costs no fetch: the same token again, another new token, and a
  // token signed with the previous key (still published) all verify without one.
  const again = await mint(tokens.access_token);
  assert.equal(again.status, 200, JSON.stringify(again.body));
  const second = await login({ resource: RESOURCE, scope: `openid ${VOICE_SCOPE}` });
  const fresh = await mint(second.tokens.access_token);
  assert.equal(fresh.status, 200, JSON.stringify(fresh.body));
  await checkWithTwilioPython(fresh.body.token, fresh.body.grants);
  const old = await mint(firstToken);
  assert.equal(old.status, 200, JSON.stringify(old.body));
  assert.equal(await jwksFetches(), before.fetches + 1);
  assert.equal(jwksRequests, served + 1);
});

test('tokenmint logged no access token, no Twilio token and no secret', { timeout: TIMEOUT }, async () => {
  await stopTokenmint();
  const log = tokenmint.log();
  assert.ok(log.includes('"event":"token_minted"'), 'the audit log records mints');
  for (const token of seenTokens) {
    assert.ok(!log.includes(token.split('.')[2]), 'a token signature appears in the log');
  }
  assert.ok(!log.includes(TWILIO_KEY_SECRET), 'the API Key secret appears in the log');
  assert.ok(!log.includes(CLIENT.secret), 'the client secret appears in the log');
});
