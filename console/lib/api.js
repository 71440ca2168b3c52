// console/lib/api.js: the one way the console talks to the broker: Warren's management HTTP
// API (RabbitMQ's), with the session's basic-auth credentials. There are no console-only
// endpoints: whatever the page shows or does, rabbitmqadmin or curl could do the same.

import {credentials} from './session.js';

// An API refusal or failure: status and RabbitMQ's {error, reason}.
export class ApiError extends Error {
  constructor(status, body, text) {
    const reason = body && (body.reason || body.error);
    super(reason ? String(reason) : text || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

// "/api/queues/%2F/q": each segment percent-encoded (the vhost "/" is "%2F"); the default
// exchange "" is "amq.default" in paths.
export function apiPath(...segments) {
  return '/api/' + segments.map((s) => encodeURIComponent(s)).join('/');
}

export function exchangePath(vhost, name, ...rest) {
  return apiPath('exchanges', vhost, name === '' ? 'amq.default' : name, ...rest);
}

// The query string of params, leaving out undefined and empty values.
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? '?' + s : '';
}

// Listeners told about every 401 that means the credentials no longer work.
const loginFailures = new Set();
export function onLoginFailure(fn) {
  loginFailures.add(fn);
  return () => loginFailures.delete(fn);
}

// Warren's and RabbitMQ's 401 reasons that mean "this login is no good", as opposed to "this
// user may not do that" (also a 401 in RabbitMQ's API).
const LOGIN_REASONS = ['Login failed', 'Not_Authorized', 'Not management user', 'User can only log in via localhost'];

export function isLoginFailure(err) {
  return err instanceof ApiError && err.status === 401 && LOGIN_REASONS.includes(err.message);
}

// One request. body: an object sent as JSON (or a string sent as it is). auth: "user:pass" in
// base64, for the login itself. Returns the parsed JSON (null for an empty answer); throws
// ApiError for any status >= 400 (with ok: [503], a 503's body is returned instead).
export async function api(method, path, {body, headers, auth, ok = []} = {}) {
  const token = auth || credentials();
  const init = {
    method,
    headers: {
      // Without it a 401 would make the browser pop its own login box.
      'X-Requested-With': 'XMLHttpRequest',
      ...(token ? {Authorization: 'Basic ' + token} : {}),
      ...(headers || {}),
    },
    credentials: 'omit',
    cache: 'no-store',
  };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, null, 'The broker cannot be reached: ' + e.message);
  }
  const text = await response.text();
  let parsed = null;
  if (text) {
    try { parsed = JSON.parse(text); } catch { parsed = null; }
  }
  if (response.status >= 400 && !ok.includes(response.status)) {
    const err = new ApiError(response.status, parsed, text);
    if (!auth && isLoginFailure(err)) loginFailures.forEach((fn) => fn(err));
    throw err;
  }
  return parsed;
}

export const get = (path, opts) => api('GET', path, opts);
export const put = (path, body, opts) => api('PUT', path, {...opts, body});
export const post = (path, body, opts) => api('POST', path, {...opts, body});
export const del = (path, opts) => api('DELETE', path, opts);
