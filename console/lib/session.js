// console/lib/session.js: who is logged in. The credentials live in sessionStorage (gone
// when the tab closes, never sent anywhere but this origin's API, as basic auth); the session
// ends after SESSION_IDLE_MS without the user touching the page (polling does not count).
// What the page offers follows the user's tags as the API enforces them (docs/console.md).

export const SESSION_IDLE_MS = 30 * 60 * 1000;

const KEY = 'warren.session';
const ACTIVITY_KEY = 'warren.activity';

function load() {
  try {
    return JSON.parse(sessionStorage.getItem(KEY) || 'null');
  } catch {
    return null;
  }
}

// The stored session {user, auth, tags}, or null.
export function current() {
  return load();
}

// base64("user:password") for the Authorization header, or null.
export function credentials() {
  const s = load();
  return s ? s.auth : null;
}

// base64 of UTF-8 user:password, as browsers and RabbitMQ encode basic auth.
export function encodeCredentials(user, password) {
  const utf8 = new TextEncoder().encode(`${user}:${password}`);
  let binary = '';
  for (const b of utf8) binary += String.fromCharCode(b);
  return btoa(binary);
}

export function save(user, auth, tags) {
  sessionStorage.setItem(KEY, JSON.stringify({user, auth, tags}));
  touch(true);
}

export function clear() {
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem(ACTIVITY_KEY);
}

let lastWrite = 0;

// The user did something: the idle clock restarts (written at most every 10 s).
export function touch(force) {
  const now = Date.now();
  if (force || now - lastWrite > 10000) {
    sessionStorage.setItem(ACTIVITY_KEY, String(now));
    lastWrite = now;
  }
}

// Has the session been idle longer than SESSION_IDLE_MS?
export function expired() {
  const last = Number(sessionStorage.getItem(ACTIVITY_KEY) || 0);
  return Date.now() - last > SESSION_IDLE_MS;
}

// What a user with these tags may do, as the API's rules allow it (mgmt.c, RabbitMQ's):
//   read:     any management tag (management, policymaker, monitoring, administrator)
//   write:    declare, delete, bind, publish, get, close own connections: management,
//             policymaker, administrator. A user whose only tag is monitoring gets a
//             read-only console (the accounts are meant for watching).
//   seesAll:  every vhost, connection and channel, and the node: monitoring, administrator
//   policies: policies and (read) vhost limits: policymaker, administrator
//   admin:    users, vhosts, permissions, operator policies, limits, definitions
export function capabilities(tags) {
  const has = (t) => tags.includes(t);
  const admin = has('administrator');
  const caps = {
    admin,
    seesAll: admin || has('monitoring'),
    policies: admin || has('policymaker'),
    write: admin || has('management') || has('policymaker'),
  };
  caps.read = caps.write || caps.seesAll;
  return caps;
}
