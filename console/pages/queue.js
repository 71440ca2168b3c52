// console/pages/queue.js: one queue: its depth and rates over the last minutes, how long its
// messages have waited (Warren's oldest_message_age_ms and mean_message_age_ms), consumers
// with their prefetch and their channel's unacknowledged messages, bindings, the policy in
// effect; and the actions: bind, unbind, publish, get messages, purge, delete.

import {apiPath, del, get, post, query} from '../lib/api.js';
import {lineChart, gaugePoints, ratePoints} from '../lib/charts.js';
import {h, fill, link, num, rate, bytes, duration, tableView} from '../lib/dom.js';
import {actionButton, form, problem, section} from '../lib/forms.js';
import {bindForm, bindingTable, featureMarks, publishForm} from '../lib/widgets.js';
import {HISTORY} from './overview.js';

const ACKMODES = [
  ['ack_requeue_true', 'Nack message requeue true'],
  ['reject_requeue_true', 'Reject requeue true'],
  ['ack_requeue_false', 'Automatic ack'],
  ['reject_requeue_false', 'Reject requeue false'],
];

function fact(label, value) {
  return h('div', {class: 'fact'}, h('span', {class: 'fact-label'}, label), value);
}

// The queue with its history, or null (after saying so in main) when it does not exist.
async function fetchQueue(main, path, vhost, name) {
  try {
    return await get(path + query(HISTORY));
  } catch (err) {
    if (err.status !== 404) throw err;
    fill(main, problem(`There is no queue "${name}" in virtual host "${vhost}" (any more).`));
    return null;
  }
}

export default async function queue(main, ctx, vhost, name) {
  const path = apiPath('queues', vhost, name);
  let first = await fetchQueue(main, path, vhost, name);
  if (!first) return;
  const tiles = h('div', {class: 'tiles'});
  const depth = h('canvas', {'aria-label': 'Queue depth', role: 'img'});
  const rates = h('canvas', {'aria-label': 'Queue rates', role: 'img'});
  const details = h('div', {class: 'facts'});
  const policy = h('div');
  const consumers = h('div');
  const bindings = h('div');
  fill(main,
    h('p', {class: 'crumbs'}, h('a', {href: '#/queues'}, 'Queues'), ' › ', vhost),
    h('h1', null, 'Queue ', h('span', {class: 'object-name'}, name)),
    tiles,
    h('div', {class: 'charts'},
      h('section', {class: 'chart-box', dataset: {chart: 'depth'}}, h('h2', null, 'Messages'), h('div', {class: 'chart'}, depth)),
      h('section', {class: 'chart-box', dataset: {chart: 'rates'}}, h('h2', null, 'Rates'), h('div', {class: 'chart'}, rates))),
    h('div', {class: 'columns'},
      h('section', {class: 'panel-box'}, h('h2', null, 'Details'), details),
      h('section', {class: 'panel-box'}, h('h2', null, 'Policy in effect'), policy)),
    h('section', {class: 'panel-box'}, h('h2', null, 'Consumers'), consumers),
    h('section', {class: 'panel-box'}, h('h2', null, 'Bindings'), bindings));
  const depthChart = lineChart(depth, [{label: 'Ready'}, {label: 'Unacknowledged'}], 'count');
  const ratesChart = lineChart(rates, [{label: 'Published'}, {label: 'Delivered'}], 'rate');
  ctx.onLeave(() => { depthChart.destroy(); ratesChart.destroy(); });

  const exchanges = ctx.caps.write ? get(apiPath('exchanges', vhost) + '?columns=name').catch(() => []) : Promise.resolve([]);
  async function loadBindings() {
    try {
      const list = await get(path + '/bindings');
      fill(bindings, bindingTable(list, 'source', ctx.caps.write, loadBindings));
    } catch (err) {
      fill(bindings, problem(err.message));
    }
  }
  await loadBindings();

  if (ctx.caps.write) {
    const names = (await exchanges).map((x) => x.name);
    main.append(
      section('Add a binding', bindForm(vhost, {queue: name, exchanges: names}, loadBindings)),
      section('Publish a message', publishForm(vhost, '', name)),
      section('Get messages', getForm(vhost, name)),
      h('section', {class: 'panel-box danger-zone'}, h('h2', null, 'Purge or delete'),
        actionButton('Purge messages', async () => { await del(path + '/contents'); return `Queue "${name}" purged.`; },
          {danger: true, confirm: `Remove every ready message from "${name}"?`}),
        ' ',
        actionButton('Delete queue', async () => {
          await del(path);
          ctx.go('#/queues');
          return `Queue "${name}" deleted.`;
        }, {danger: true, confirm: `Delete the queue "${name}" and its messages?`})));
  }

  ctx.every(async () => {
    const q = first || (await fetchQueue(main, path, vhost, name));
    first = null;
    if (!q) return false;
    fill(tiles,
      h('div', {class: 'tile', dataset: {tile: 'ready'}}, h('span', {class: 'tile-value'}, num(q.messages_ready)), h('span', {class: 'tile-label'}, 'Ready')),
      h('div', {class: 'tile', dataset: {tile: 'unacked'}}, h('span', {class: 'tile-value'}, num(q.messages_unacknowledged)), h('span', {class: 'tile-label'}, 'Unacked')),
      h('div', {class: 'tile', dataset: {tile: 'messages'}}, h('span', {class: 'tile-value'}, num(q.messages)), h('span', {class: 'tile-label'}, 'Total')),
      h('div', {class: 'tile'}, h('span', {class: 'tile-value'}, bytes(q.message_bytes)), h('span', {class: 'tile-label'}, 'Bytes ready')),
      h('div', {class: 'tile', dataset: {tile: 'consumers'}}, h('span', {class: 'tile-value'}, num(q.consumers)), h('span', {class: 'tile-label'}, 'Consumers')),
      h('div', {class: 'tile'}, h('span', {class: 'tile-value'}, q.messages_ready ? duration(q.oldest_message_age_ms) : '–'), h('span', {class: 'tile-label'}, 'Oldest waiting')),
      h('div', {class: 'tile'}, h('span', {class: 'tile-value'}, q.messages_ready ? duration(q.mean_message_age_ms) : '–'), h('span', {class: 'tile-label'}, 'Mean wait')));
    const ready = gaugePoints(q.messages_ready_details);
    depthChart.update([ready, gaugePoints(q.messages_unacknowledged_details)]);
    const stats = q.message_stats || {};
    ratesChart.update([ratePoints(stats.publish_details, ready), ratePoints(stats.deliver_get_details, ready)]);
    fill(details,
      fact('Virtual host', vhost), fact('Type', q.type), fact('State', q.state), fact('Features', featureMarks(q)),
      fact('Arguments', tableView(q.arguments)),
      fact('Acknowledge rate', rate(stats.ack_details && stats.ack_details.rate)),
      fact('Redeliver rate', rate(stats.redeliver_details && stats.redeliver_details.rate)),
      q.exclusive_consumer_tag ? fact('Exclusive consumer', q.exclusive_consumer_tag) : null);
    fill(policy,
      fact('Policy', q.policy || h('span', {class: 'muted'}, 'none')),
      fact('Operator policy', q.operator_policy || h('span', {class: 'muted'}, 'none')),
      fact('Effective definition', tableView(q.effective_policy_definition)));
    await drawConsumers(q.consumer_details || []);
    main.dataset.updated = String(Date.now());
    return true;
  });

  async function drawConsumers(list) {
    if (!list.length) {
      fill(consumers, h('p', {class: 'muted'}, 'No consumers.'));
      return;
    }
    // The unacknowledged messages are counted per channel (as in RabbitMQ): the consumer's
    // channel's figure, from the channels the user may see.
    const channels = new Map((await get(apiPath('channels') + '?columns=name,messages_unacknowledged,prefetch_count'))
      .map((c) => [c.name, c]));
    fill(consumers, h('div', {class: 'table-scroll'}, h('table', {class: 'list'},
      h('thead', null, h('tr', null, ['Channel', 'Consumer tag', 'Ack required', 'Prefetch', 'Channel unacked',
        'Exclusive', 'Arguments'].map((t, i) => h('th', {class: i === 3 || i === 4 ? 'n' : null}, t)))),
      h('tbody', null, list.map((c) => {
        const d = c.channel_details || {};
        const ch = channels.get(d.name);
        return h('tr', null,
          h('td', null, h('a', {href: link('connections', d.connection_name || '')}, d.name)),
          h('td', null, c.consumer_tag), h('td', null, c.ack_required ? 'yes' : 'no'),
          h('td', {class: 'n'}, c.prefetch_count ? num(c.prefetch_count) : 'unlimited'),
          h('td', {class: 'n'}, ch ? num(ch.messages_unacknowledged) : '–'),
          h('td', null, c.exclusive ? 'yes' : 'no'), h('td', null, tableView(c.arguments)));
      })))));
  }
}

function getForm(vhost, name) {
  const results = h('div', {class: 'messages'});
  const el = form({
    fields: [
      {name: 'ackmode', label: 'Ack mode', type: 'select', options: ACKMODES, value: 'ack_requeue_true'},
      {name: 'encoding', label: 'Encoding', type: 'select', options: [['auto', 'Auto string / base64'], ['base64', 'base64']], value: 'auto'},
      {name: 'count', label: 'Messages', type: 'number', value: '1', min: 1, keep: true},
      {name: 'truncate', label: 'Truncate payloads at (bytes)', type: 'number', value: '50000', keep: true},
    ],
    submitLabel: 'Get messages',
    reset: false,
    async onSubmit(v) {
      const got = await post(apiPath('queues', vhost, name, 'get'), {
        count: Number(v.count), ackmode: v.ackmode, encoding: v.encoding,
        truncate: v.truncate === '' ? undefined : Number(v.truncate)});
      fill(results, got.map((m, i) => h('div', {class: 'message'},
        h('h4', null, `Message ${i + 1}`, h('span', {class: 'muted small'}, ` ${m.message_count} left in the queue`)),
        h('div', {class: 'facts'},
          fact('Exchange', m.exchange === '' ? '(AMQP default)' : m.exchange), fact('Routing key', m.routing_key),
          fact('Redelivered', m.redelivered ? 'yes' : 'no'), fact('Properties', tableView(m.properties)),
          fact('Payload', `${num(m.payload_bytes)} bytes, encoding: ${m.payload_encoding}`)),
        h('pre', {class: 'payload'}, m.payload))));
      return got.length ? `${got.length} message${got.length > 1 ? 's' : ''} fetched.` : 'The queue is empty.';
    },
  });
  el.append(results);
  return el;
}
