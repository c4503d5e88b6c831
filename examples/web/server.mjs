#!/usr/bin/env node
// Serves the example page, plus a stub identity provider at /idp/token, on loopback only.
//
//   node examples/web/server.mjs [--port 3000]
//
// Then open http://localhost:3000/ with the demo tokenmint running (`cargo run --release`).
//
// The stub stands in for your real identity provider (Auth0, Entra ID, Cognito, Keycloak,
// Firebase, …): it hands anyone an HS256 JWT for the user they name, signed with the secret of
// [auth.demo-idp] in config/default.toml. Never run anything like it outside a demo.
//
// Node's standard library only: no npm install needed.

import { createHmac } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

// Must match [auth.demo-idp] in config/default.toml.
export const DEMO_IDP = {
  issuer: 'http://127.0.0.1:3000/idp',
  audience: 'tokenmint-demo',
  secret: 'demo-idp-hs256-secret-not-for-production',
  lifetimeSeconds: 300,
};

const HERE = dirname(fileURLToPath(import.meta.url));
const FILES = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/index.html': ['index.html', 'text/html; charset=utf-8'],
  '/app.js': ['app.js', 'text/javascript; charset=utf-8'],
  '/token-client.js': ['token-client.js', 'text/javascript; charset=utf-8'],
};
const USER = /^[A-Za-z0-9_-]{1,64}$/;

const base64url = (data) => Buffer.from(data).toString('base64url');

/** An HS256 JWT for `sub`, as the demo tokenmint expects it. `expired` backdates it. */
export function idpToken(sub, { now = Math.floor(Date.now() / 1000), expired = false } = {}) {
  const iat = expired ? now - 3600 : now;
  const header = base64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const payload = base64url(
    JSON.stringify({
      iss: DEMO_IDP.issuer,
      aud: DEMO_IDP.audience,
      sub,
      iat,
      exp: iat + DEMO_IDP.lifetimeSeconds,
    }),
  );
  const signature = createHmac('sha256', DEMO_IDP.secret)
    .update(`${header}.${payload}`)
    .digest('base64url');
  return `${header}.${payload}.${signature}`;
}

function send(res, status, type, body) {
  res.writeHead(status, {
    'Content-Type': type,
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
  });
  res.end(body);
}

async function handle(req, res) {
  const url = new URL(req.url, 'http://placeholder');
  if (url.pathname === '/idp/token') {
    // ?user=NAME picks the subject; ?expired=1 hands out a token that expired an hour ago, to
    // show what the client does when tokenmint answers 401.
    const user = url.searchParams.get('user') ?? 'alice';
    if (!USER.test(user)) {
      send(res, 400, 'application/json', JSON.stringify({ error: 'invalid_request' }));
      return;
    }
    const token = idpToken(user, { expired: url.searchParams.get('expired') === '1' });
    const body = { access_token: token, token_type: 'Bearer', expires_in: DEMO_IDP.lifetimeSeconds };
    send(res, 200, 'application/json', JSON.stringify(body));
    return;
  }
  const file = FILES[url.pathname];
  if (!file || (req.method !== 'GET' && req.method !== 'HEAD')) {
    send(res, 404, 'text/plain; charset=utf-8', 'not found\n');
    return;
  }
  send(res, 200, file[1], await readFile(join(HERE, file[0])));
}

/** Starts the server; resolves with it once it listens. */
export function serve({ port = 3000, host = '127.0.0.1' } = {}) {
  const server = http.createServer((req, res) => {
    handle(req, res).catch((error) => {
      console.error(error);
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'internal error\n');
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { port: { type: 'string', default: '3000' } } });
  const server = await serve({ port: Number(values.port) });
  const { port } = server.address();
  console.log(`example page on http://localhost:${port}/ and http://127.0.0.1:${port}/`);
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
