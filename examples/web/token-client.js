// Keeps a Twilio Access Token from tokenmint fresh in a browser. No dependencies; copy this file.
//
//   let device; // onToken runs for the first token too, before the Device exists
//   const tokens = createTokenClient({
//     url: 'https://tokens.example.com/apps/web/token',
//     getIdpToken: ({ forceRefresh }) => auth.getAccessToken({ forceRefresh }), // your IdP SDK
//     onToken: ({ token }) => device?.updateToken(token), // every new token, one place
//     onError: (error) => showSignedOut(error),
//   });
//   device = new Twilio.Device((await tokens.start()).token);
//   refreshOnSdkEvent(tokens, device, 'tokenWillExpire'); // Conversations, Sync: 'tokenAboutToExpire'
//   refreshOnWake(tokens); // a tab coming back to the foreground, or back online
//
// What it does, and why:
// - The caller proves who it is with its identity provider's token (`Authorization: Bearer`);
//   the identity comes from that token, never from the request body.
// - It refreshes ahead of expiry: when 80% of the lifetime has passed, and at least 30 s before
//   the end (half the lifetime for very short tokens). The lifetime is measured from `ttl` on the
//   local clock, and `expires_at` (server time) is used when it is earlier, so a device whose
//   clock is wrong neither refreshes in a loop nor too late.
// - 429 and 503 are "try later": it waits at least `Retry-After` (readable because tokenmint
//   exposes it to CORS), else backs off exponentially with jitter; network errors and other 5xx
//   back off the same way, up to `maxRetries` attempts in a row.
// - 401 gets one retry with a fresh IdP token (the one it had may just have expired); 400, 403,
//   404, 413 and a second 401 stop the client: retrying cannot help, and a loop of refused
//   requests only trips the service's rate limits.
// - No cookies are sent (`credentials: 'omit'` by default): the Bearer token is the credential.

/** An answer from tokenmint that is not a token, or a request that did not get one. */
export class TokenmintError extends Error {
  constructor(message, { status = 0, code = 'network_error', retryAfterMs, requestId }) {
    super(message);
    this.name = 'TokenmintError';
    this.status = status; // 0 when no HTTP answer could be read (network or CORS failure)
    this.code = code; // tokenmint's problem+json `code`
    this.retryAfterMs = retryAfterMs; // from Retry-After, when given
    this.requestId = requestId; // X-Request-Id, to find the request in tokenmint's log
    this.retryable = false; // network, 408, 429, 5xx: later may work (set by the client)
    this.fatal = false; // the client gave up and stopped refreshing (set by the client)
  }
}

/** Statuses where trying again later can succeed. */
const TRANSIENT = new Set([408, 429, 500, 502, 503, 504]);

/** Milliseconds from a Retry-After value (delay-seconds or an HTTP-date), or undefined. */
export function parseRetryAfter(value, now = Date.now()) {
  if (value == null || value === '') return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** How long before expiry to refresh a token that lives `ttlMs`. */
export function refreshMargin(ttlMs) {
  return Math.min(Math.max(ttlMs * 0.2, 30_000), ttlMs / 2);
}

export function createTokenClient({
  url, // tokenmint's token route for your app, e.g. https://tokens.example.com/apps/web/token
  // async ({ forceRefresh }) => string: the caller's token from your IdP, sent as a Bearer
  // token. Leave it out behind a backend-for-frontend that knows the user by its session cookie
  // (then use credentials: 'same-origin').
  getIdpToken,
  request = {}, // body fields: grants, room, ttl, platform, device_id
  onToken = () => {}, // ({ token, identity, grants, ttl, expires_at, expiresAt, refreshAt })
  onRetry = () => {}, // ({ error, attempt, delayMs })
  onError = () => {}, // (TokenmintError) once the client gives up: error.fatal is true
  maxRetries = 6,
  baseDelayMs = 1000,
  maxDelayMs = 60_000,
  // 'omit': no cookies. 'include' only for an app with cors_allow_credentials = true;
  // 'same-origin' for a backend-for-frontend on the page's own origin.
  credentials = 'omit',
  // Injected for tests; the defaults are the browser's.
  fetch = globalThis.fetch.bind(globalThis),
  now = () => Date.now(),
  setTimeout = globalThis.setTimeout.bind(globalThis),
  clearTimeout = globalThis.clearTimeout.bind(globalThis),
  random = Math.random,
}) {
  let current = null; // the last token response, with local expiresAt / refreshAt
  let inFlight = null; // the running fetch cycle, shared by concurrent callers
  let timer = null;
  // 'idle' (not started, or stop()), 'running', 'waiting' (gave up on a transient failure:
  // refreshIfStale tries again) or 'halted' (tokenmint refused the caller: only start() again)
  let state = 'idle';
  let generation = 0; // bumps on stop(), so a late answer from before it is dropped

  const schedule = (delayMs, task) => {
    clearTimeout(timer);
    timer = setTimeout(task, Math.max(0, delayMs));
  };
  const stoppedError = () => new TokenmintError('stopped', { code: 'stopped' });

  async function requestOnce(forceRefresh) {
    const headers = { 'Content-Type': 'application/json' };
    if (getIdpToken) {
      try {
        headers.Authorization = `Bearer ${await getIdpToken({ forceRefresh })}`;
      } catch (cause) {
        // Signed out of the identity provider: nothing to retry until the user signs in.
        throw new TokenmintError(`identity provider: ${cause.message}`, { code: 'idp_error' });
      }
    }
    let response;
    try {
      response = await fetch(url, {
        method: 'POST',
        headers,
        body: JSON.stringify(request),
        credentials,
        // No `cache: 'no-store'`: tokenmint already answers no-store, and in Chromium that
        // option also bypasses the preflight cache, costing every refresh an extra round trip.
      });
    } catch (cause) {
      // The browser hides why: offline, DNS, or a CORS refusal look the same to a page.
      throw new TokenmintError(`no answer from tokenmint (network or CORS): ${cause.message}`, {});
    }
    const requestId = response.headers.get('X-Request-Id') ?? undefined;
    const body = await response.json().catch(() => ({}));
    if (response.ok && typeof body.token === 'string') return body;
    throw new TokenmintError(body.detail || body.title || `HTTP ${response.status}`, {
      status: response.status,
      code: body.code || 'http_error',
      retryAfterMs: parseRetryAfter(response.headers.get('Retry-After'), now()),
      requestId,
    });
  }

  function backoff(error, attempt) {
    // Retry-After is a floor: coming back earlier would only be refused again. A little jitter
    // on top keeps many clients limited at once from coming back at the same instant.
    if (error.retryAfterMs !== undefined) return error.retryAfterMs + random() * 500;
    const exponential = Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1));
    return exponential / 2 + random() * (exponential / 2);
  }

  function accept(body, receivedAt) {
    const ttlMs = body.ttl * 1000;
    const byTtl = receivedAt + ttlMs;
    const byServer = Date.parse(body.expires_at);
    const expiresAt = byServer > receivedAt && byServer < byTtl ? byServer : byTtl;
    const refreshAt = expiresAt - refreshMargin(expiresAt - receivedAt);
    current = { ...body, expiresAt, refreshAt };
    return current;
  }

  /** One refresh cycle: retries transient failures, gives up on the rest. */
  async function cycle(myGeneration) {
    let forceIdp = false;
    let retried401 = false;
    for (let attempt = 1; ; attempt += 1) {
      try {
        const body = await requestOnce(forceIdp);
        if (myGeneration !== generation) throw stoppedError();
        return accept(body, now());
      } catch (error) {
        if (myGeneration !== generation) throw stoppedError();
        if (error.status === 401 && !retried401 && getIdpToken) {
          retried401 = true;
          forceIdp = true;
          onRetry({ error, attempt, delayMs: 0 });
          continue;
        }
        error.retryable = error.status === 0 || TRANSIENT.has(error.status);
        if (error.code === 'idp_error') error.retryable = false;
        if (!error.retryable || attempt > maxRetries) {
          error.fatal = true;
          throw error;
        }
        const delayMs = backoff(error, attempt);
        onRetry({ error, attempt, delayMs });
        await new Promise((resolve) => schedule(delayMs, resolve));
        if (myGeneration !== generation) throw stoppedError();
      }
    }
  }

  /** Fetches a new token now (or joins the fetch already running) and schedules the next. */
  function refresh() {
    if (inFlight) return inFlight;
    state = 'running';
    const myGeneration = generation;
    inFlight = cycle(myGeneration)
      .then((token) => {
        schedule(token.refreshAt - now(), () => refresh().catch(() => {}));
        try {
          onToken(token);
        } catch (bug) {
          queueMicrotask(() => {
            throw bug; // reported as uncaught, without stopping the refresh schedule
          });
        }
        return token;
      })
      .catch((error) => {
        if (error.code !== 'stopped') {
          state = error.retryable ? 'waiting' : 'halted';
          clearTimeout(timer);
          onError(error);
        }
        throw error;
      })
      .finally(() => {
        if (myGeneration === generation) inFlight = null;
      });
    return inFlight;
  }

  return {
    /** Gets the first token and keeps it fresh until stop(). */
    start: refresh,
    /** Forces a new token, e.g. on the Twilio SDK's tokenWillExpire. */
    refresh,
    /** The current token when still valid for `minValidityMs`, else a new one. */
    async getToken(minValidityMs = 0) {
      if (current && current.expiresAt - now() > minValidityMs) return current;
      return refresh();
    },
    /**
     * Refreshes when the token is due or gone, e.g. when the tab becomes visible again or the
     * network is back: background tabs throttle timers, so a scheduled refresh may not have
     * run. Does nothing before start(), after stop(), or after tokenmint refused the caller
     * (call start() again once the user has signed in again).
     */
    refreshIfStale() {
      if (inFlight) return inFlight;
      if (state === 'waiting') return refresh();
      if (state === 'running' && current && now() >= current.refreshAt) return refresh();
      return Promise.resolve(current);
    },
    /** Stops refreshing; an answer still on its way is dropped. */
    stop() {
      state = 'idle';
      generation += 1;
      inFlight = null;
      clearTimeout(timer);
    },
    get current() {
      return current;
    },
    /** 'idle', 'running', 'waiting' or 'halted', as above. */
    get state() {
      return state;
    },
  };
}

/**
 * Makes a Twilio SDK object's own expiry warning fetch a new token: Voice's `Device` emits
 * `tokenWillExpire` (`tokenRefreshMs`, 10 s by default, before expiry); the Conversations and
 * Sync clients emit `tokenAboutToExpire`. The new token reaches the SDK the way every new token
 * does, through your onToken (`sdk.updateToken(token)`), so scheduled refreshes and the SDK's
 * warnings take one path. Returns a function that detaches the listener.
 */
export function refreshOnSdkEvent(client, sdk, event = 'tokenWillExpire') {
  const listener = () => {
    client.refresh().catch(() => {}); // onError has reported a failure
  };
  sdk.on(event, listener);
  return () => (sdk.off ?? sdk.removeListener).call(sdk, event, listener);
}

/** Refreshes a due token when the page becomes visible or the network comes back. */
export function refreshOnWake(client, { document = globalThis.document, window = globalThis } = {}) {
  const wake = () => {
    if (document.visibilityState === 'visible') client.refreshIfStale().catch(() => {});
  };
  document.addEventListener('visibilitychange', wake);
  window.addEventListener('online', wake);
  return () => {
    document.removeEventListener('visibilitychange', wake);
    window.removeEventListener('online', wake);
  };
}
