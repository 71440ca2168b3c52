// console/lib/layout.js: where the topology view puts things. Exchanges stand in columns on
// the left, ordered by how deep exchange-to-exchange bindings nest them (bindings that close
// a cycle are left out of the depth), queues in the last column on the right. An edge that
// skips columns gets a waypoint in each column it crosses, a slot of its own, so it never
// runs behind a box (the usual layered-drawing trick). Within a column, each node or
// waypoint sits near the mean height of what leads to it (the barycentre rule), which keeps
// most edges short and uncrossed. Pure: names in, coordinates out.

export const NODE_WIDTH = 190;
export const NODE_HEIGHT = 34;
export const COLUMN_GAP = 170;
export const ROW_GAP = 14;
export const MARGIN = 20;

// Depth of each exchange: the longest path over e2e edges, without the edges a depth-first
// walk finds going back to a node still on its stack (they close cycles).
function depths(exchanges, edges) {
  const isExchange = new Set(exchanges.map((n) => n.id));
  const outgoing = new Map(exchanges.map((n) => [n.id, []]));
  for (const e of edges) if (isExchange.has(e.from) && isExchange.has(e.to) && e.from !== e.to) outgoing.get(e.from).push(e.to);
  const state = new Map();
  const order = [];
  const forward = new Map(exchanges.map((n) => [n.id, []]));
  const visit = (id) => {
    state.set(id, 'open');
    for (const next of outgoing.get(id)) {
      if (state.get(next) === 'open') continue;
      forward.get(id).push(next);
      if (!state.has(next)) visit(next);
    }
    state.set(id, 'done');
    order.push(id);
  };
  for (const n of [...exchanges].sort((a, b) => a.name.localeCompare(b.name))) if (!state.has(n.id)) visit(n.id);
  const depth = new Map(exchanges.map((n) => [n.id, 0]));
  for (const id of order.reverse()) for (const next of forward.get(id)) depth.set(next, Math.max(depth.get(next), depth.get(id) + 1));
  return depth;
}

// nodes: [{id, kind: 'exchange' | 'queue', name}]; edges: [{id, from, to}] between node ids.
// Returns {positions: Map node id -> {x, y}, routes: Map edge id -> [{x, y}, ...] (start,
// then the left and right ends of each waypoint, then end), width, height}.
export function layout(nodes, edges) {
  const exchanges = nodes.filter((n) => n.kind === 'exchange');
  const queues = nodes.filter((n) => n.kind === 'queue');
  const depth = depths(exchanges, edges);
  const queueColumn = exchanges.length ? Math.max(...depth.values()) + 1 : 0;
  const column = new Map([...depth, ...queues.map((q) => [q.id, queueColumn])]);
  const columns = [];
  for (const n of [...exchanges, ...queues]) (columns[column.get(n.id)] ||= []).push({id: n.id, name: n.name});

  // What leads into each slot, waypoints included.
  const incoming = new Map([...column.keys()].map((id) => [id, []]));
  const waypoints = new Map();
  for (const e of edges) {
    if (!column.has(e.from) || !column.has(e.to)) continue;
    const from = column.get(e.from), to = column.get(e.to);
    let previous = e.from;
    const ids = [];
    for (let c = from + 1; c < to; c++) {
      const id = `~${e.id}~${c}`;
      columns[c] ||= [];
      columns[c].push({id, name: '\uffff' + e.id});
      incoming.set(id, [previous]);
      ids.push(id);
      previous = id;
    }
    waypoints.set(e.id, ids);
    incoming.get(e.to).push(previous);
  }

  const out = new Map();
  const tallest = Math.max(1, ...columns.filter(Boolean).map((c) => c.length));
  const step = NODE_HEIGHT + ROW_GAP;
  columns.forEach((slots, c) => {
    if (!slots) return;
    const centre = (slot) => {
      const ys = incoming.get(slot.id).map((id) => out.get(id)).filter(Boolean).map((p) => p.y);
      return ys.length ? ys.reduce((a, b) => a + b, 0) / ys.length : Infinity;
    };
    const keyed = slots.map((slot) => ({slot, key: centre(slot)}));
    keyed.sort((a, b) => (a.key === b.key ? a.slot.name.localeCompare(b.slot.name) : a.key - b.key));
    const offset = ((tallest - slots.length) * step) / 2;
    keyed.forEach(({slot}, i) => out.set(slot.id, {x: MARGIN + c * (NODE_WIDTH + COLUMN_GAP), y: MARGIN + offset + i * step}));
  });

  const routes = new Map();
  const mid = (p) => p.y + NODE_HEIGHT / 2;
  for (const e of edges) {
    const a = out.get(e.from), b = out.get(e.to);
    if (!a || !b) continue;
    const points = [{x: a.x + NODE_WIDTH, y: mid(a)}];
    for (const id of waypoints.get(e.id) || []) {
      const w = out.get(id);
      points.push({x: w.x, y: mid(w)}, {x: w.x + NODE_WIDTH, y: mid(w)});
    }
    points.push({x: b.x, y: mid(b)});
    routes.set(e.id, points);
  }
  const used = columns.length || 1;
  const positions = new Map([...out].filter(([id]) => !id.startsWith('~')));
  return {positions, routes, width: 2 * MARGIN + used * NODE_WIDTH + (used - 1) * COLUMN_GAP, height: 2 * MARGIN + tallest * step - ROW_GAP};
}
