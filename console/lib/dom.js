// console/lib/dom.js: building DOM nodes and formatting figures. Text always goes in as text
// nodes (never innerHTML), so names, payloads and client properties cannot inject markup;
// the Content-Security-Policy forbids inline script and style as a second wall.

const SVG_NS = 'http://www.w3.org/2000/svg';

// Sets attributes and properties on el: class, dataset, on<event> handlers, booleans.
function apply(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.setAttribute('class', Array.isArray(value) ? value.filter(Boolean).join(' ') : value);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

// An HTML element: h('a', {href: '#/queues', class: 'x'}, 'text', node, [more]).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  apply(el, attrs);
  append(el, children);
  return el;
}

// An SVG element, same shape as h.
export function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  apply(el, attrs);
  append(el, children);
  return el;
}

// Replaces everything in el with children.
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// "#/queues/%2F/q": a console link, each segment encoded.
export function link(...segments) {
  return '#/' + segments.map((s) => encodeURIComponent(s)).join('/');
}

// ---- figures -------------------------------------------------------------------------------

export function num(n) {
  if (n === undefined || n === null || Number.isNaN(n)) return '–';
  return Number(n).toLocaleString('en-US');
}

export function rate(r) {
  if (r === undefined || r === null) return '–';
  const v = Number(r);
  return (v === 0 ? '0' : v < 10 ? v.toFixed(1) : Math.round(v).toLocaleString('en-US')) + '/s';
}

export function bytes(n) {
  if (n === undefined || n === null) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = Number(n);
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i === 0 ? String(v) : v.toFixed(v < 10 ? 1 : 0)) + ' ' + units[i];
}

// A duration in ms as "3d 4h", "2h 5m", "4m 10s", "12s", "350ms".
export function duration(ms) {
  if (ms === undefined || ms === null) return '–';
  const s = Math.floor(ms / 1000);
  if (s < 1) return Math.round(ms) + 'ms';
  const d = Math.floor(s / 86400), hr = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  if (d) return `${d}d ${hr}h`;
  if (hr) return `${hr}h ${m}m`;
  if (m) return `${m}m ${s % 60}s`;
  return `${s}s`;
}

export function clock(timestamp) {
  return new Date(timestamp).toLocaleTimeString('en-GB', {hour12: false});
}

export function dateTime(timestamp) {
  return timestamp ? new Date(timestamp).toLocaleString('en-GB', {hour12: false}) : '–';
}

// A value from an API object at a dotted path ("message_stats.publish_details.rate").
export function dotted(obj, path) {
  return path.split('.').reduce((o, k) => (o === undefined || o === null ? undefined : o[k]), obj);
}

// An AMQP table (arguments, headers, client properties) as a definition list.
export function tableView(object) {
  const entries = Object.entries(object || {});
  if (!entries.length) return h('span', {class: 'muted'}, 'none');
  return h('dl', {class: 'kv'}, entries.map(([k, v]) => [
    h('dt', null, k),
    h('dd', null, v !== null && typeof v === 'object' ? tableView(v) : JSON.stringify(v)),
  ]));
}

// The default exchange has an empty name; the API's paths (and the console's) call it
// amq.default.
export function exchangeLabel(name) {
  return name === '' ? '(AMQP default)' : name;
}

export function exchangeLink(vhost, name) {
  return link('exchanges', vhost, name === '' ? 'amq.default' : name);
}
