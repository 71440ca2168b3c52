// console/lib/widgets.js: pieces the exchange and queue pages share: the publish form,
// binding lists with unbind, the bind form, and the feature marks of a queue or exchange.

import {apiPath, del, exchangePath, post} from './api.js';
import {h, link, exchangeLabel, exchangeLink, tableView} from './dom.js';
import {actionButton, form} from './forms.js';
import {ARGUMENT_MARKS, BINDING_ARGUMENTS, PROPERTIES} from './hints.js';

// "D AD Excl TTL DLX" and the policy: what RabbitMQ's lists show in their Features column.
export function featureMarks(item) {
  const marks = [];
  if (item.durable) marks.push(['D', 'durable']);
  if (item.auto_delete) marks.push(['AD', 'auto-delete']);
  if (item.exclusive) marks.push(['Excl', 'exclusive']);
  if (item.internal) marks.push(['I', 'internal']);
  for (const [key, value] of Object.entries(item.arguments || {}))
    marks.push([ARGUMENT_MARKS[key] || key, `${key}: ${JSON.stringify(value)}`]);
  return h('span', {class: 'marks'},
    marks.map(([mark, title]) => h('abbr', {class: 'mark', title}, mark)),
    item.policy ? h('span', {class: 'mark policy', title: 'policy'}, item.policy) : null,
    item.operator_policy ? h('span', {class: 'mark policy', title: 'operator policy'}, item.operator_policy) : null);
}

// The publish form: to exchange x of vhost, or (queue given) to the default exchange with the
// queue's name as routing key, as RabbitMQ's queue page publishes.
export function publishForm(vhost, x, queue) {
  const fields = [];
  if (queue === undefined) fields.push({name: 'routing_key', label: 'Routing key', keep: true});
  fields.push(
    {name: 'delivery_mode', label: 'Delivery mode', type: 'select', options: [['1', '1 - Non-persistent'], ['2', '2 - Persistent']], value: '1'},
    {name: 'headers', label: 'Headers', type: 'args'},
    {name: 'properties', label: 'Properties', type: 'args', hints: PROPERTIES.map(([key, type]) => ({key, type}))},
    {name: 'payload', label: 'Payload', type: 'textarea', rows: 5},
    {name: 'payload_encoding', label: 'Payload encoding', type: 'select',
      options: [['string', 'String (UTF-8)'], ['base64', 'Base64']], value: 'string'});
  return form({
    cls: 'publish',
    fields,
    submitLabel: 'Publish message',
    async onSubmit(v) {
      const properties = {...v.properties, delivery_mode: Number(v.delivery_mode)};
      if (Object.keys(v.headers).length) properties.headers = v.headers;
      const answer = await post(exchangePath(vhost, queue === undefined ? x : '', 'publish'), {
        routing_key: queue === undefined ? v.routing_key : queue,
        properties,
        payload: v.payload,
        payload_encoding: v.payload_encoding,
      });
      return answer && answer.routed ? 'Message published.' : 'Message published, but not routed: no queue took it.';
    },
  });
}

function bindingPath(b) {
  const kind = b.destination_type === 'queue' ? 'q' : 'e';
  return apiPath('bindings', b.vhost, 'e', b.source === '' ? 'amq.default' : b.source, kind, b.destination, b.properties_key);
}

function endpoint(b, side) {
  if (side === 'source') {
    return h('a', {href: exchangeLink(b.vhost, b.source)}, exchangeLabel(b.source));
  }
  const href = b.destination_type === 'queue' ? link('queues', b.vhost, b.destination) : exchangeLink(b.vhost, b.destination);
  return [h('a', {href}, b.destination), ' ',
    h('span', {class: 'muted small'}, b.destination_type)];
}

// A table of bindings showing the `side` end ('source' or 'destination'), with an unbind
// button each (not for the default exchange's, which cannot be removed) when canWrite.
// onChange runs after an unbind.
export function bindingTable(bindings, side, canWrite, onChange) {
  const rows = bindings.map((b) => h('tr', null,
    h('td', null, endpoint(b, side)),
    h('td', null, b.routing_key === '' ? h('span', {class: 'muted'}, '(empty)') : b.routing_key),
    h('td', null, tableView(b.arguments)),
    h('td', null, canWrite && b.source !== ''
      ? actionButton('Unbind', async () => { await del(bindingPath(b)); onChange(); return 'Binding removed.'; }, {danger: true})
      : b.source === '' ? h('span', {class: 'muted small'}, 'default binding') : null)));
  if (!rows.length) rows.push(h('tr', null, h('td', {colspan: 4, class: 'muted'}, 'No bindings.')));
  return h('div', {class: 'table-scroll'}, h('table', {class: 'list bindings'},
    h('thead', null, h('tr', null, h('th', null, side === 'source' ? 'From' : 'To'), h('th', null, 'Routing key'),
      h('th', null, 'Arguments'), h('th', null, ''))), h('tbody', null, rows)));
}

// The bind form: from exchange `source` (choose the destination) or to queue `queue` (choose
// the exchange). exchanges: names offered as suggestions.
export function bindForm(vhost, {source, queue, exchanges = []}, onChange) {
  const listId = 'exchange-names-' + Math.random().toString(36).slice(2);
  const fields = [];
  if (queue !== undefined) {
    fields.push({name: 'exchange', label: 'From exchange', required: true, list: listId});
  } else {
    fields.push({name: 'kind', label: 'To', type: 'select', options: [['q', 'Queue'], ['e', 'Exchange']], value: 'q'},
      {name: 'destination', label: 'Name', required: true});
  }
  fields.push({name: 'routing_key', label: 'Routing key'}, {name: 'arguments', label: 'Arguments', type: 'args', hints: BINDING_ARGUMENTS});
  const el = form({
    fields,
    submitLabel: 'Bind',
    async onSubmit(v) {
      const path = queue !== undefined
        ? apiPath('bindings', vhost, 'e', v.exchange, 'q', queue)
        : apiPath('bindings', vhost, 'e', source, v.kind, v.destination);
      await post(path, {routing_key: v.routing_key, arguments: v.arguments});
      onChange();
      return 'Bound.';
    },
  });
  el.append(h('datalist', {id: listId}, exchanges.filter((n) => n !== '').map((n) => h('option', {value: n}))));
  return el;
}

