// console/pages/topology.js: a picture of one virtual host: exchanges on the left, queues on
// the right, bindings as labelled edges (exchange-to-exchange ones too, alternate exchanges
// dashed), and "where would this message go?": the route computed in the browser from the
// API's lists (lib/route.js), highlighted without publishing anything. RabbitMQ has no such
// page. Big vhosts are drawn in part: the name filter picks what to show.

import {apiPath, get} from '../lib/api.js';
import {h, svg, fill, num, link, exchangeLabel, exchangeLink} from '../lib/dom.js';
import {argsEditor, problem} from '../lib/forms.js';
import {layout, NODE_WIDTH, NODE_HEIGHT} from '../lib/layout.js';
import {route, bindingId} from '../lib/route.js';

// More nodes than this make a picture nobody can read (and a slow one): the filter narrows.
const MAX_NODES = 250;
const LABEL_CHARS = 24;

// What the route computed here cannot know, said next to every answer.
const LIMITS = [
  'It is computed in your browser from the lists the API gave you just now; nothing is published.',
  'Queues may still refuse or drop the message: length limits with reject-publish, exclusive queues of other connections, TTL 0, dead-lettering later on.',
  'Your permissions are not checked: publishing needs write permission on the exchange.',
  'Nested header values (tables, arrays) are compared as JSON here; the broker also compares their AMQP types.',
  'An alternate exchange set by a policy is followed only if you may read policies (policymaker, administrator).',
];

const short = (name) => (name.length > LABEL_CHARS ? name.slice(0, LABEL_CHARS - 1) + '…' : name);

function bindingLabel(b, type) {
  const args = Object.entries(b.arguments || {});
  if (type === 'headers') return args.map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ') || 'all';
  if (type === 'fanout') return '';
  return b.routing_key === '' ? '""' : b.routing_key;
}

// A point of the cubic from p0 to p3 with control points p1, p2, at t.
function cubicAt([p0, p1, p2, p3], t) {
  const u = 1 - t;
  return [0, 1].map((k) => u * u * u * p0[k] + 3 * u * u * t * p1[k] + 3 * u * t * t * p2[k] + t * t * t * p3[k]);
}

// The SVG path of an edge and where its label goes. Forward edges run from the source's right
// side to the target's left side through their waypoints (curves between columns, straight
// across a waypoint), the label on the last curve, near the target, where edges fanning out
// of one exchange have come apart. An edge to the same column loops out to the right, one
// to an earlier column (a cycle) runs from the source's left side to the target's right.
function edgePath(points, from, to) {
  const half = NODE_HEIGHT / 2;
  let curves;
  if (to.x > from.x) {
    curves = [];
    let d = `M ${points[0].x} ${points[0].y}`;
    for (let i = 1; i < points.length; i++) {
      const p = points[i - 1], q = points[i];
      if (i % 2 === 0) { d += ` L ${q.x} ${q.y}`; continue; }
      const bend = Math.max(60, Math.abs(q.x - p.x) / 2);
      const c = [[p.x, p.y], [p.x + bend, p.y], [q.x - bend, q.y], [q.x, q.y]];
      curves.push(c);
      d += ` C ${c[1][0]} ${c[1][1]}, ${c[2][0]} ${c[2][1]}, ${c[3][0]} ${c[3][1]}`;
    }
    const [x, y] = cubicAt(curves[curves.length - 1], 0.7);
    return {d, label: [x, y]};
  }
  const y1 = from.y + half, y2 = to.y + half + (from === to ? 8 : 0);
  const c = to.x === from.x
    ? [[from.x + NODE_WIDTH, y1 - (from === to ? 8 : 0)], [from.x + NODE_WIDTH + 70, y1], [to.x + NODE_WIDTH + 70, y2], [to.x + NODE_WIDTH, y2]]
    : [[from.x, y1], [from.x - 70, y1], [to.x + NODE_WIDTH + 70, y2], [to.x + NODE_WIDTH, y2]];
  const [x, y] = cubicAt(c, 0.5);
  return {d: `M ${c[0][0]} ${c[0][1]} C ${c[1][0]} ${c[1][1]}, ${c[2][0]} ${c[2][1]}, ${c[3][0]} ${c[3][1]}`, label: [x, y]};
}

export default async function topology(main, ctx) {
  let vhost = ctx.vhost() || (ctx.vhosts.includes('/') ? '/' : ctx.vhosts[0]);
  if (vhost === undefined) {
    fill(main, problem('You have no virtual host to show.'));
    return;
  }
  let data = null;
  let current = null; // the route shown, or null
  const picture = h('div', {class: 'topology-box'});
  const note = h('p', {class: 'muted small'});
  const vhostPick = h('select', {'aria-label': 'Virtual host'}, ctx.vhosts.map((v) => h('option', {value: v, selected: v === vhost}, v)));
  const filter = h('input', {type: 'search', placeholder: 'Regexp on names', 'aria-label': 'Filter names'});
  const showDefault = h('input', {type: 'checkbox'});
  const showUnbound = h('input', {type: 'checkbox'});
  const exchangePick = h('select', {'aria-label': 'Exchange', name: 'exchange'});
  const routingKey = h('input', {type: 'text', name: 'routing_key', placeholder: 'routing key', 'aria-label': 'Routing key'});
  const headers = argsEditor([{key: 'CC', type: 'json', help: 'more routing keys: ["a","b"]'}, {key: 'BCC', type: 'json'}], 'Header');
  const answer = h('div', {class: 'route-answer', role: 'status'});
  const routeForm = h('form', {class: 'form route-form'},
    h('h2', null, 'Where would this message go?'),
    h('div', {class: 'fields'},
      h('div', {class: 'field'}, h('label', null, 'Exchange', exchangePick)),
      h('div', {class: 'field'}, h('label', null, 'Routing key', routingKey)),
      h('div', {class: 'field wide'}, h('span', {class: 'label'}, 'Headers'), headers.element)),
    h('div', {class: 'actions'}, h('button', {type: 'submit', class: 'primary'}, 'Show route'),
      h('button', {type: 'button', class: 'secondary', onclick: () => { current = null; fill(answer); draw(); }}, 'Clear')),
    answer);

  fill(main,
    h('h1', null, 'Topology'),
    h('div', {class: 'table-tools'}, h('label', {class: 'inline'}, 'Virtual host ', vhostPick), filter,
      h('label', {class: 'inline'}, showDefault, ' Default exchange'), h('label', {class: 'inline'}, showUnbound, ' Unbound exchanges')),
    note, picture, routeForm);

  async function load() {
    const [exchanges, bindings, queues, policies] = await Promise.all([
      get(apiPath('exchanges', vhost) + '?columns=name,type,internal,arguments,policy'),
      get(apiPath('bindings', vhost)),
      get(apiPath('queues', vhost) + '?columns=name,messages,consumers'),
      ctx.caps.policies ? get(apiPath('policies', vhost)) : Promise.resolve(null),
    ]);
    data = {exchanges, bindings, queues, policies};
    fill(exchangePick, exchanges.filter((x) => !x.internal).map((x) => h('option', {value: x.name}, exchangeLabel(x.name))));
    draw();
  }

  function draw() {
    const types = new Map(data.exchanges.map((x) => [x.name, x.type]));
    let pattern = null;
    try {
      pattern = filter.value ? new RegExp(filter.value) : null;
    } catch {
      note.textContent = 'The filter is not a valid regular expression.';
      return;
    }
    const onRoute = (kind, name) => current && (kind === 'exchange' ? current.exchanges.includes(name) : current.queues.includes(name));
    // Edges: bindings (the default exchange's only on request or on the route) and alternates.
    let edges = data.bindings
      .filter((b) => b.source !== '' || showDefault.checked || (current && current.bindings.has(bindingId(b))))
      .map((b) => ({id: bindingId(b), from: 'x:' + b.source, to: (b.destination_type === 'queue' ? 'q:' : 'x:') + b.destination,
        label: bindingLabel(b, types.get(b.source)), alternate: false}));
    for (const x of data.exchanges) {
      const ae = x.arguments && x.arguments['alternate-exchange'];
      if (typeof ae === 'string' && types.has(ae)) edges.push({id: 'ae:' + x.name, from: 'x:' + x.name, to: 'x:' + ae, label: 'alternate', alternate: true});
    }
    if (current) for (const a of current.alternates)
      if (!edges.some((e) => e.id === 'ae:' + a.from)) edges.push({id: 'ae:' + a.from, from: 'x:' + a.from, to: 'x:' + a.to, label: 'alternate (policy)', alternate: true});
    // Nodes: the filter's matches and their neighbours, the route, and bound exchanges.
    let nodes = [
      ...data.exchanges.map((x) => ({id: 'x:' + x.name, kind: 'exchange', name: x.name, x})),
      ...data.queues.map((q) => ({id: 'q:' + q.name, kind: 'queue', name: q.name, q})),
    ];
    const touched = new Set(edges.flatMap((e) => [e.from, e.to]));
    if (pattern) {
      const matching = new Set(nodes.filter((n) => pattern.test(n.name)).map((n) => n.id));
      const keep = new Set(matching);
      for (const e of edges) if (matching.has(e.from) || matching.has(e.to)) { keep.add(e.from); keep.add(e.to); }
      nodes = nodes.filter((n) => keep.has(n.id) || onRoute(n.kind, n.name));
    }
    nodes = nodes.filter((n) => n.kind === 'queue' || touched.has(n.id) || showUnbound.checked || onRoute(n.kind, n.name) ||
      (pattern && pattern.test(n.name)));
    const total = nodes.length;
    if (nodes.length > MAX_NODES) {
      const first = nodes.filter((n) => onRoute(n.kind, n.name));
      nodes = first.concat(nodes.filter((n) => !onRoute(n.kind, n.name)).slice(0, MAX_NODES - first.length));
    }
    const shown = new Set(nodes.map((n) => n.id));
    edges = edges.filter((e) => shown.has(e.from) && shown.has(e.to));
    note.textContent = total > MAX_NODES
      ? `Showing ${num(MAX_NODES)} of ${num(total)} exchanges and queues: narrow with the filter.`
      : `${num(nodes.filter((n) => n.kind === 'exchange').length)} exchanges, ${num(nodes.filter((n) => n.kind === 'queue').length)} queues, ${num(edges.length)} bindings in ${vhost}.`;
    render(nodes, edges, types);
  }

  function render(nodes, edges, types) {
    const {positions, routes, width, height} = layout(nodes, edges);
    const routed = (e) => current && (e.alternate ? current.alternates.some((a) => 'ae:' + a.from === e.id) : current.bindings.has(e.id));
    const edgeEls = edges.map((e) => {
      const {d, label} = edgePath(routes.get(e.id), positions.get(e.from), positions.get(e.to));
      const [mx, my] = label;
      return svg('g', {class: ['edge', e.alternate && 'alternate', routed(e) && 'hit'], dataset: {edge: e.id}},
        svg('path', {d, 'marker-end': routed(e) ? 'url(#arrow-hit)' : 'url(#arrow)'}),
        e.label ? svg('text', {x: mx, y: my - 4, 'text-anchor': 'middle'}, short(e.label)) : null,
        svg('title', null, `${e.from.slice(2) || '(AMQP default)'} → ${e.to.slice(2)}${e.label ? ': ' + e.label : ''}`));
    });
    const nodeEls = nodes.map((n) => {
      const p = positions.get(n.id);
      const hit = current && (n.kind === 'exchange' ? current.exchanges.includes(n.name) : current.queues.includes(n.name));
      const sub = n.kind === 'exchange' ? `${types.get(n.name)}${n.x.internal ? ', internal' : ''}` : `${num(n.q.messages)} msgs, ${num(n.q.consumers)} cons.`;
      const href = n.kind === 'exchange' ? exchangeLink(vhost, n.name) : link('queues', vhost, n.name);
      return svg('a', {href},
        svg('g', {class: ['node', n.kind, hit && 'hit'], dataset: {node: n.id}},
          svg('rect', {x: p.x, y: p.y, width: NODE_WIDTH, height: NODE_HEIGHT, rx: n.kind === 'queue' ? 10 : 3}),
          svg('text', {x: p.x + 8, y: p.y + 14, class: 'name'}, short(n.kind === 'exchange' ? exchangeLabel(n.name) : n.name)),
          svg('text', {x: p.x + 8, y: p.y + 28, class: 'sub'}, sub),
          svg('title', null, n.kind === 'exchange' ? exchangeLabel(n.name) : n.name)));
    });
    fill(picture, svg('svg', {class: ['topology', current && 'routing'], width, height, viewBox: `0 0 ${width} ${height}`,
      role: 'img', 'aria-label': `Bindings of ${vhost}`},
      svg('defs', null, ['arrow', 'arrow-hit'].map((id) => svg('marker', {id, viewBox: '0 0 10 10', refX: 10, refY: 5,
        markerWidth: 8, markerHeight: 8, markerUnits: 'userSpaceOnUse', orient: 'auto-start-reverse'},
      svg('path', {d: 'M 0 0 L 10 5 L 0 10 z'})))),
      svg('g', {class: 'edges'}, edgeEls), svg('g', {class: 'nodes'}, nodeEls)));
  }

  routeForm.addEventListener('submit', (event) => {
    event.preventDefault();
    let values;
    try {
      values = headers.value();
    } catch (err) {
      fill(answer, problem(err.message));
      return;
    }
    current = route(data, exchangePick.value, routingKey.value, values);
    const r = current;
    fill(answer,
      r.error ? problem(r.error) : h('p', {class: 'route-result'}, r.queues.length
        ? [`Delivered to ${r.queues.length} queue${r.queues.length > 1 ? 's' : ''}: `,
          r.queues.map((q, i) => [i ? ', ' : '', h('a', {href: link('queues', vhost, q), class: 'routed-queue'}, q)])]
        : 'Unroutable: no queue would get this message (with mandatory set, it comes back to the publisher).'),
      r.exchanges.length > 1 ? h('p', null, 'Through the exchanges: ', r.exchanges.map(exchangeLabel).join(' → ')) : null,
      r.alternates.map((a) => h('p', null, `"${a.from}" routed nothing: its alternate exchange "${a.to}" took the message.`)),
      r.notes.map((n) => h('p', {class: 'muted'}, n)),
      h('details', {class: 'limits'}, h('summary', null, 'What this cannot know'), h('ul', null, LIMITS.map((l) => h('li', null, l)))));
    if (r.error) current = null;
    draw();
  });
  for (const el of [filter, showDefault, showUnbound]) el.addEventListener(el === filter ? 'input' : 'change', () => data && draw());
  vhostPick.addEventListener('change', () => { vhost = vhostPick.value; current = null; fill(answer); load(); });
  await load();
}
