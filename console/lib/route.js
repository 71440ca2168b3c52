// console/lib/route.js: "where would this message go?", computed in the browser from what the
// API lists (/api/exchanges, /api/bindings, /api/policies), without publishing anything. It
// follows the broker's routing (broker/model/vhost_route.c and exchange_*.c, RabbitMQ's
// rules): direct, fanout, topic (* one word, # zero or more), headers (x-match all, any,
// all-with-x, any-with-x), the default exchange, exchange-to-exchange bindings expanded
// breadth-first with each exchange visited once (so cycles end), at most MAX_EXCHANGE_HOPS
// exchanges, alternate exchanges (the argument, else the policy's), and the CC/BCC headers
// (sender-selected distribution). Pure: data in, result out.

export const MAX_EXCHANGE_HOPS = 64;
const MAX_KEY = 255;

// The identity of a binding, as the topology view keys its edges.
export function bindingId(b) {
  return [b.source, b.destination_type, b.destination, b.properties_key].join('\u0000');
}

// ---- matching ------------------------------------------------------------------------------

function words(key) {
  return key === '' ? [] : key.split('.');
}

// Does a topic binding key match a routing key? Keys are split on '.'; "*" is exactly one
// word, "#" zero or more; an empty key has no words.
export function topicMatches(bindingKey, routingKey) {
  const pattern = words(bindingKey), key = words(routingKey);
  // seen[i][j]: pattern from i against key from j already failed (keeps "#.#.#" linear).
  const failed = new Set();
  function match(i, j) {
    if (i === pattern.length) return j === key.length;
    const id = i * (key.length + 1) + j;
    if (failed.has(id)) return false;
    let ok;
    if (pattern[i] === '#') ok = match(i + 1, j) || (j < key.length && match(i, j + 1));
    else ok = j < key.length && (pattern[i] === '*' || pattern[i] === key[j]) && match(i + 1, j + 1);
    if (!ok) failed.add(id);
    return ok;
  }
  return match(0, 0);
}

// Equal as RabbitMQ compares header values (numbers by value, strings, booleans; tables and
// arrays member by member; JSON cannot tell integer types apart, the broker compares nested
// values with their AMQP types).
function sameValue(a, b) {
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return a === b;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a), kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && sameValue(a[k], b[k]));
}

// Does a headers binding (its arguments) match the message's headers (an object)?
export function headersMatch(args, headers) {
  const mode = args['x-match'] === undefined ? 'all' : args['x-match'];
  const any = mode === 'any' || mode === 'any-with-x';
  const withX = mode === 'all-with-x' || mode === 'any-with-x';
  let counted = 0, matched = 0;
  for (const [key, value] of Object.entries(args)) {
    if (key === 'x-match' || (!withX && key.startsWith('x-'))) continue;
    counted++;
    if (Object.prototype.hasOwnProperty.call(headers, key) && (value === null || sameValue(value, headers[key]))) matched++;
  }
  return any ? matched > 0 : matched === counted;
}

// ---- routing -------------------------------------------------------------------------------

// The routing keys a message carries: its own, then the string members of its CC and BCC
// headers (longer than a shortstr: skipped, nothing can be bound with them).
function senderKeys(headers) {
  const keys = [];
  for (const name of ['CC', 'BCC']) {
    const list = headers[name];
    if (Array.isArray(list)) for (const k of list) if (typeof k === 'string' && new TextEncoder().encode(k).length <= MAX_KEY) keys.push(k);
  }
  return keys;
}

// The alternate exchange of x: its argument, else its policy's (when the caller could read
// policies: policies is null otherwise). Returns {name} or {unknown: policy name} or null.
function alternateOf(x, policies) {
  const argument = x.arguments && x.arguments['alternate-exchange'];
  if (typeof argument === 'string') return argument ? {name: argument} : null;
  if (!x.policy) return null;
  if (!policies) return {unknown: x.policy};
  const policy = policies.find((p) => p.name === x.policy);
  const fromPolicy = policy && policy.definition && policy.definition['alternate-exchange'];
  return typeof fromPolicy === 'string' && fromPolicy ? {name: fromPolicy, policy: x.policy} : null;
}

// Routes a message published to `exchange` with routingKey and headers (an object) through
// the vhost described by {exchanges, bindings, policies} (the API's lists; policies null when
// unreadable). Returns {queues: [names], exchanges: [names visited], bindings: Set of
// bindingId, alternates: [{from, to}], notes: [text], error: text or null}.
export function route({exchanges, bindings, policies = null}, exchange, routingKey, headers = {}) {
  const result = {queues: [], exchanges: [], bindings: new Set(), alternates: [], notes: [], error: null};
  const byName = new Map(exchanges.map((x) => [x.name, x]));
  const bySource = new Map();
  for (const b of bindings) {
    if (!bySource.has(b.source)) bySource.set(b.source, []);
    bySource.get(b.source).push(b);
  }
  const first = byName.get(exchange);
  if (!first) {
    result.error = `There is no exchange "${exchange}" in this virtual host.`;
    return result;
  }
  if (first.internal) {
    result.error = `"${exchange}" is internal: publishing to it is refused (403 ACCESS_REFUSED).`;
    return result;
  }
  const extraKeys = senderKeys(headers);
  if (extraKeys.length) result.notes.push(`CC/BCC add the routing keys ${extraKeys.map((k) => JSON.stringify(k)).join(', ')}.`);
  const queues = new Set();
  const visited = [exchange];
  for (let i = 0; i < visited.length && i < MAX_EXCHANGE_HOPS; i++) {
    const x = byName.get(visited[i]);
    let routedAny = false;
    const keys = [routingKey, ...extraKeys];
    for (const b of bySource.get(x.name) || []) {
      let hit;
      if (x.name === '' || x.type === 'direct') hit = keys.includes(b.routing_key);
      else if (x.type === 'fanout') hit = true;
      else if (x.type === 'topic') hit = keys.some((k) => topicMatches(b.routing_key, k));
      else if (x.type === 'headers') hit = headersMatch(b.arguments || {}, headers);
      else {
        if (!result.notes.some((n) => n.includes(`type "${x.type}"`)))
          result.notes.push(`Exchange "${x.name}" has type "${x.type}", which this view cannot follow.`);
        hit = false;
      }
      if (!hit) continue;
      routedAny = true;
      result.bindings.add(bindingId(b));
      if (b.destination_type === 'queue') queues.add(b.destination);
      else if (!visited.includes(b.destination)) {
        if (byName.has(b.destination)) visited.push(b.destination);
      }
    }
    if (x.name === '') continue; // the default exchange has no alternate
    if (!routedAny) {
      const ae = alternateOf(x, policies);
      if (ae && ae.unknown) {
        result.notes.push(`"${x.name}" routed nothing; its policy "${ae.unknown}" may name an alternate exchange, ` +
          'which only policymakers and administrators can read.');
      } else if (ae && !byName.has(ae.name)) {
        result.notes.push(`"${x.name}" routed nothing; its alternate exchange "${ae.name}" does not exist.`);
      } else if (ae) {
        result.alternates.push({from: x.name, to: ae.name});
        if (!visited.includes(ae.name)) visited.push(ae.name);
      }
    }
  }
  if (visited.length > MAX_EXCHANGE_HOPS)
    result.notes.push(`More than ${MAX_EXCHANGE_HOPS} exchanges on the path: the broker stops there too.`);
  result.exchanges = visited.slice(0, MAX_EXCHANGE_HOPS);
  result.queues = [...queues].sort();
  return result;
}
