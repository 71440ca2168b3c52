// console/app.js: the console's frame: logging in and out, the session's expiry, the
// navigation (hash routes such as #/queues/%2F/orders), the virtual-host picker, the alarm
// banner, and running one page at a time with its timers stopped when the user moves on.

import {api, apiPath, get, onLoginFailure, isLoginFailure} from './lib/api.js';
import {h, fill} from './lib/dom.js';
import * as session from './lib/session.js';
import overview from './pages/overview.js';
import connections, {channelsPage} from './pages/connections.js';
import exchanges from './pages/exchanges.js';
import exchange from './pages/exchange.js';
import queues from './pages/queues.js';
import queue from './pages/queue.js';
import topology from './pages/topology.js';
import admin from './pages/admin.js';

// How often live figures are fetched again (the broker samples every 5 s by default).
export const POLL_MS = 5000;
const EXPIRY_CHECK_MS = 15000;

const $ = (id) => document.getElementById(id);

// [pattern, page, nav section]; a page is render(main, ctx, ...decoded segments).
const ROUTES = [
  [/^$/, overview, 'overview'],
  [/^connections$/, connections, 'connections'],
  [/^connections\/([^/]+)$/, connections, 'connections'],
  [/^channels$/, channelsPage, 'channels'],
  [/^exchanges$/, exchanges, 'exchanges'],
  [/^exchanges\/([^/]+)\/([^/]+)$/, exchange, 'exchanges'],
  [/^queues$/, queues, 'queues'],
  [/^queues\/([^/]+)\/([^/]+)$/, queue, 'queues'],
  [/^topology$/, topology, 'topology'],
  [/^admin(?:\/([a-z-]+))?(?:\/([^/]+))?$/, admin, 'admin'],
];

const SECTIONS = [
  ['overview', 'Overview', '#/', () => true],
  ['connections', 'Connections', '#/connections', () => true],
  ['channels', 'Channels', '#/channels', () => true],
  ['exchanges', 'Exchanges', '#/exchanges', () => true],
  ['queues', 'Queues', '#/queues', () => true],
  ['topology', 'Topology', '#/topology', () => true],
  ['admin', 'Admin', '#/admin', (caps) => caps.admin || caps.policies],
];

let cleanups = [];
let ctx = null;
let alarmTimer = null;

function stopPage() {
  for (const fn of cleanups.splice(0)) {
    try { fn(); } catch { /* a page's cleanup failing must not keep the next from running */ }
  }
}

// What a page gets: who is logged in, the picked vhost, timers that stop with the page.
function makeContext(who) {
  const caps = session.capabilities(who.tags);
  return {
    user: who.user,
    tags: who.tags,
    caps,
    vhosts: [],
    pollMs: POLL_MS,
    vhost: () => sessionStorage.getItem('warren.vhost') || '',
    // Runs fn now and every ms while the page is shown and the tab visible, until fn returns
    // false (the object is gone).
    every(fn, ms = POLL_MS) {
      let stopped = false;
      let timer = null;
      const tick = async () => {
        if (stopped) return;
        if (!document.hidden) {
          try {
            if ((await fn()) === false) stopped = true;
          } catch (err) {
            if (!isLoginFailure(err)) console.warn(err);
          }
        }
        if (!stopped) timer = setTimeout(tick, ms);
      };
      tick();
      cleanups.push(() => { stopped = true; clearTimeout(timer); });
    },
    onLeave(fn) { cleanups.push(fn); },
    reloadVhosts() { return loadVhosts(); },
    go(hash) { location.hash = hash; },
  };
}

async function show() {
  if (!ctx) return;
  stopPage();
  const raw = location.hash.replace(/^#\/?/, '').replace(/\/$/, '');
  const main = $('main');
  main.replaceChildren();
  main.dataset.page = '';
  for (const [pattern, page, section] of ROUTES) {
    const m = raw.match(pattern);
    if (!m) continue;
    for (const a of $('nav').querySelectorAll('a')) a.classList.toggle('active', a.dataset.section === section);
    main.dataset.page = section;
    let params;
    try {
      params = m.slice(1).map((s) => (s === undefined ? undefined : decodeURIComponent(s)));
    } catch {
      break; // a malformed %-escape: no such page
    }
    try {
      await page(main, ctx, ...params);
    } catch (err) {
      if (!isLoginFailure(err)) main.append(h('div', {class: 'problem', role: 'alert'}, err.message));
    }
    return;
  }
  main.append(h('div', {class: 'problem', role: 'alert'}, `There is no page "#/${raw}".`));
}

async function loadVhosts() {
  let names = [];
  try {
    names = (await get(apiPath('vhosts') + '?columns=name')).map((v) => v.name);
  } catch (err) {
    if (isLoginFailure(err)) return;
  }
  ctx.vhosts = names;
  const picked = ctx.vhost();
  if (picked && !names.includes(picked)) sessionStorage.removeItem('warren.vhost');
  fill($('vhost'), h('option', {value: ''}, 'All'),
    names.map((n) => h('option', {value: n, selected: n === ctx.vhost()}, n)));
}

// The alarm banner: /api/health/checks/alarms answers 503 with the alarms in effect.
async function checkAlarms() {
  try {
    const answer = await api('GET', apiPath('health', 'checks', 'alarms'), {ok: [503]});
    const alarms = (answer && answer.alarms) || [];
    const banner = $('alarms');
    banner.hidden = !alarms.length;
    fill(banner, alarms.map((a) => h('div', {class: 'alarm'},
      h('strong', null, a.resource === 'memory' ? 'Memory alarm' : a.resource === 'disk' ? 'Disk alarm' : `${a.resource} alarm`),
      ` on ${a.node}: publishers are blocked until it clears.`)));
  } catch { /* shown by the pages' own errors */ }
}

function start(who) {
  ctx = makeContext(who);
  $('login').hidden = true;
  $('top').hidden = false;
  $('main').hidden = false;
  fill($('user'), h('span', {class: 'name'}, who.user), ' ',
    h('span', {class: 'tags muted'}, who.tags.length ? who.tags.join(', ') : 'no tags'));
  fill($('nav'), SECTIONS.filter(([, , , allowed]) => allowed(ctx.caps))
    .map(([section, label, href]) => h('a', {href, dataset: {section}}, label)));
  document.body.dataset.caps = Object.entries(ctx.caps).filter(([, v]) => v).map(([k]) => k).join(' ');
  loadVhosts().then(show);
  checkAlarms();
  clearInterval(alarmTimer);
  alarmTimer = setInterval(() => { if (!document.hidden) checkAlarms(); }, POLL_MS);
}

function logout(message) {
  stopPage();
  session.clear();
  ctx = null;
  clearInterval(alarmTimer);
  $('top').hidden = true;
  $('main').hidden = true;
  $('main').replaceChildren();
  $('alarms').hidden = true;
  $('login').hidden = false;
  $('login-message').textContent = message || '';
  $('login-message').className = 'form-status' + (message ? ' error' : '');
  $('login-password').value = '';
  $('login-user').focus();
}

async function login(event) {
  event.preventDefault();
  const user = $('login-user').value;
  const auth = session.encodeCredentials(user, $('login-password').value);
  $('login-message').textContent = 'Logging in…';
  try {
    const me = await get(apiPath('whoami'), {auth});
    const tags = Array.isArray(me.tags) ? me.tags : String(me.tags || '').split(',').filter(Boolean);
    if (!session.capabilities(tags).read) {
      $('login-message').textContent = 'Not allowed: this user has no management tag.';
      return;
    }
    session.save(me.name, auth, tags);
    $('login-password').value = '';
    $('login-message').textContent = '';
    start({user: me.name, tags});
  } catch (err) {
    $('login-message').className = 'form-status error';
    if (err.status === 401 && err.message === 'Not management user')
      $('login-message').textContent = `Not allowed: "${user}" has none of the tags management, policymaker, ` +
        'monitoring or administrator, so it may not use the management console.';
    else if (err.status === 401)
      $('login-message').textContent = err.message === 'Login failed' ? 'Login failed: wrong user name or password.' : err.message;
    else $('login-message').textContent = err.message;
  }
}

function init() {
  $('login-form').addEventListener('submit', login);
  $('logout').addEventListener('click', () => logout('You have logged out.'));
  $('vhost').addEventListener('change', () => {
    sessionStorage.setItem('warren.vhost', $('vhost').value);
    show();
  });
  window.addEventListener('hashchange', show);
  for (const type of ['pointerdown', 'keydown']) document.addEventListener(type, () => session.touch(), {passive: true});
  onLoginFailure((err) => logout(`The broker refused this login (${err.message}). Log in again.`));
  setInterval(() => {
    if (ctx && session.expired())
      logout(`Your session ended after ${session.SESSION_IDLE_MS / 60000} minutes without activity. Log in again.`);
  }, EXPIRY_CHECK_MS);
  const saved = session.current();
  if (saved && session.expired()) {
    session.clear();
    logout(`Your session ended after ${session.SESSION_IDLE_MS / 60000} minutes without activity. Log in again.`);
  } else if (saved) {
    start(saved);
  } else {
    logout();
  }
}

init();
