// The example page: wires token-client.js to a (stub) identity provider and to a stand-in for a
// Twilio SDK object, and shows what happens. Only token-client.js is meant to be copied; this
// file is the glue a real app would write around it.
//
// Query parameters (all optional): tokenmint (base URL, default http://127.0.0.1:8080),
// app (default web), user (the stub IdP's subject, default alice), room, grants (comma list),
// credentials=include (send cookies: only for an app with cors_allow_credentials),
// expired=1 (the stub IdP hands out expired tokens: tokenmint answers 401),
// autostart=0 (wait for the button).

import { createTokenClient, refreshOnSdkEvent, refreshOnWake } from './token-client.js';

const params = new URLSearchParams(location.search);
const TOKENMINT = (params.get('tokenmint') ?? 'http://127.0.0.1:8080').replace(/\/$/, '');
const APP = params.get('app') ?? 'web';
const USER = params.get('user') ?? 'alice';

const request = {};
if (params.get('grants')) request.grants = params.get('grants').split(',');
if (params.get('room')) request.room = params.get('room');

// --- The caller's identity-provider token -------------------------------------------------
// In a real app this is your IdP SDK, e.g. auth0.getTokenSilently({ cacheMode: 'off' }),
// msal.acquireTokenSilent(...), firebase.auth().currentUser.getIdToken(forceRefresh). The stub
// IdP of examples/web/server.mjs answers on this page's own origin.
let idpCache = null;
async function getIdpToken({ forceRefresh }) {
  if (!forceRefresh && idpCache && idpCache.expiresAt - Date.now() > 30_000) return idpCache.token;
  const query = new URLSearchParams({ user: USER });
  if (params.get('expired') === '1') query.set('expired', '1');
  log('', `IdP: token for ${USER} from the stub at /idp/token${forceRefresh ? ' (forced refresh)' : ''}`);
  const response = await fetch(`/idp/token?${query}`, { cache: 'no-store' });
  if (!response.ok) throw new Error(`the identity provider answered ${response.status}`);
  const body = await response.json();
  idpCache = { token: body.access_token, expiresAt: Date.now() + body.expires_in * 1000 };
  return idpCache.token;
}

// --- A stand-in for Twilio.Device (Voice) ---------------------------------------------------
// The real one is `new Twilio.Device(token)`, emits 'tokenWillExpire' shortly before its token
// expires (tokenRefreshMs, 10 s by default) and takes a new one with updateToken().
class SdkStandIn {
  #listeners = new Map();
  token = null;
  updates = 0;
  on(event, fn) {
    this.#listeners.set(event, [...(this.#listeners.get(event) ?? []), fn]);
  }
  off(event, fn) {
    this.#listeners.set(event, (this.#listeners.get(event) ?? []).filter((f) => f !== fn));
  }
  emit(event) {
    for (const fn of this.#listeners.get(event) ?? []) fn(this);
  }
  updateToken(token) {
    this.token = token;
    this.updates += 1;
    render.sdk(this);
  }
}

// --- The page -----------------------------------------------------------------------------
const $ = (id) => document.getElementById(id);
const events = [];

function log(kind, text) {
  events.push({ kind, text, at: new Date().toISOString() });
  const li = document.createElement('li');
  const time = document.createElement('time');
  time.textContent = new Date().toLocaleTimeString('en-GB');
  const span = document.createElement('span');
  span.className = kind;
  span.textContent = text;
  li.append(time, span);
  $('log').append(li);
  $('log').scrollTop = $('log').scrollHeight;
}

function decodeJwt(token) {
  const part = (s) => JSON.parse(new TextDecoder().decode(
    Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0))));
  const [header, payload] = token.split('.');
  return { header: part(header), payload: part(payload) };
}

const truncate = (token) => `${token.slice(0, 28)}…${token.slice(-10)}  (${token.length} chars)`;
const clock = (ms) => new Date(ms).toLocaleTimeString('en-GB');

const render = {
  status(state, detail = '') {
    $('status').dataset.state = state;
    $('status').textContent = state;
    $('status-detail').textContent = detail;
  },
  token(t) {
    const { header, payload } = decodeJwt(t.token);
    $('identity').textContent = t.identity;
    $('app').textContent = t.app;
    $('grants').textContent = t.grants.join(', ');
    $('ttl').textContent = `${t.ttl} s`;
    $('expires').textContent = t.expires_at;
    $('token').textContent = truncate(t.token);
    $('header').textContent = JSON.stringify(header, null, 2);
    $('payload').textContent = JSON.stringify(payload, null, 2);
    render.refreshAt();
  },
  refreshAt() {
    const t = client.current;
    if (!t || client.state !== 'running') {
      $('refresh-at').textContent = '—';
      return;
    }
    const left = Math.max(0, Math.round((t.refreshAt - Date.now()) / 1000));
    $('refresh-at').textContent =
      `${clock(t.refreshAt)} (in ${Math.floor(left / 60)} min ${left % 60} s, before expiry)`;
  },
  sdk(device) {
    $('sdk').textContent = `Twilio.Device stand-in holds a token, updated ${device.updates}×`;
  },
};

const url = `${TOKENMINT}/apps/${encodeURIComponent(APP)}/token`;
const credentials = params.get('credentials') === 'include' ? 'include' : 'omit';
$('request').textContent = `POST ${url} ${JSON.stringify(request)}` +
  (credentials === 'include' ? ' (credentials: include)' : '');

const device = new SdkStandIn();
const client = createTokenClient({
  url,
  getIdpToken,
  request,
  credentials,
  // The browser's fetch, logged so the page shows each request in order.
  fetch: (input, init) => {
    log('', `POST ${input} with Authorization: Bearer <IdP token>`);
    return window.fetch(input, init);
  },
  onToken(t) {
    log('ok', `200: token for ${t.identity} (${t.grants.join(', ')}), expires ${t.expires_at}`);
    render.status('ready', `token for ${t.identity}, valid until ${clock(t.expiresAt)}`);
    render.token(t);
    device.updateToken(t.token);
  },
  onRetry({ error, attempt, delayMs }) {
    const what = error.status ? `${error.status} ${error.code}` : 'network or CORS error';
    const why = error.retryAfterMs !== undefined ? ` (Retry-After ${error.retryAfterMs / 1000} s)` : '';
    const next = delayMs ? `retrying in ${(delayMs / 1000).toFixed(1)} s${why}` : 'retrying once with a fresh IdP token';
    log('warn', `${what}: ${next} [attempt ${attempt}]`);
    render.status('retrying', `${what}; ${next}`);
  },
  onError(error) {
    const what = error.status ? `${error.status} ${error.code}` : error.code;
    const how = error.retryable ? 'gave up for now' : 'stopped, not retrying';
    log('bad', `${what}: ${error.message} — ${how}`);
    render.status(error.retryable ? 'error' : 'stopped', `${what}: ${error.message}`);
  },
});
refreshOnSdkEvent(client, device, 'tokenWillExpire');
refreshOnWake(client);
setInterval(render.refreshAt, 1000);

$('start').addEventListener('click', () => {
  render.status('fetching', `POST ${url}`);
  client.start().catch(() => {}); // onError has shown it
});
$('stop').addEventListener('click', () => {
  client.stop();
  render.status('idle', 'stopped by the user');
  log('', 'stopped by the user');
  render.refreshAt();
});
$('simulate').addEventListener('click', () => {
  log('', 'SDK emitted tokenWillExpire');
  device.emit('tokenWillExpire');
});

// For the browser tests (tests/browser/) and for poking at in the console.
window.tokenmintDemo = { client, device, events, url };

if (params.get('autostart') !== '0') $('start').click();
