// console/pages/overview.js: the broker at a glance: message rates and queued messages as
// live charts (from /api/overview's history samples), object totals, churn, and the node's
// facts (/api/nodes, for monitoring and administrator users) with its listeners.

import {apiPath, get, query} from '../lib/api.js';
import {lineChart, gaugePoints, ratePoints} from '../lib/charts.js';
import {h, fill, num, rate, bytes, duration} from '../lib/dom.js';

// RabbitMQ's console asks the same: the last ten minutes, a sample every five seconds (in
// seconds). Warren keeps five minutes (docs/management.md), so that is what the charts show.
export const HISTORY = {lengths_age: 600, lengths_incr: 5, msg_rates_age: 600, msg_rates_incr: 5};

// The message rates the charts show: the API's counter and its label.
const RATES = [
  ['publish', 'Published'],
  ['deliver_get', 'Delivered'],
  ['ack', 'Acknowledged'],
  ['redeliver', 'Redelivered'],
  ['return_unroutable', 'Returned'],
];

function tile(label, value, id) {
  return h('div', {class: 'tile', dataset: {tile: id}}, h('span', {class: 'tile-value'}, value), h('span', {class: 'tile-label'}, label));
}

function gauge(label, used, limit, format, alarm) {
  const share = limit ? Math.min(1, used / limit) : 0;
  const meter = h('meter', {min: 0, max: 1, value: share, low: 0.7, high: 0.9, optimum: 0});
  return h('div', {class: ['fact', alarm && 'alarmed']}, h('span', {class: 'fact-label'}, label),
    h('span', null, `${format(used)} of ${format(limit)}`), meter);
}

export default async function overview(main, ctx) {
  const tiles = h('div', {class: 'tiles'});
  const queued = h('canvas', {'aria-label': 'Queued messages', role: 'img'});
  const rates = h('canvas', {'aria-label': 'Message rates', role: 'img'});
  const node = h('div', {class: 'facts'});
  const listeners = h('tbody');
  const churn = h('div', {class: 'facts'});
  const status = h('p', {class: 'muted small'});
  fill(main,
    h('h1', null, 'Overview'),
    tiles,
    h('div', {class: 'charts'},
      h('section', {class: 'chart-box', dataset: {chart: 'queued'}}, h('h2', null, 'Queued messages'), h('div', {class: 'chart'}, queued)),
      h('section', {class: 'chart-box', dataset: {chart: 'rates'}}, h('h2', null, 'Message rates'), h('div', {class: 'chart'}, rates))),
    status,
    h('div', {class: 'columns'},
      h('section', {class: 'panel-box'}, h('h2', null, 'Node'), node),
      h('section', {class: 'panel-box'}, h('h2', null, 'Churn'), churn)),
    h('section', {class: 'panel-box'}, h('h2', null, 'Listeners'),
      h('div', {class: 'table-scroll'}, h('table', {class: 'list'},
        h('thead', null, h('tr', null, h('th', null, 'Protocol'), h('th', null, 'Address'), h('th', null, 'Port'))), listeners))));

  const queuedChart = lineChart(queued, [{label: 'Ready'}, {label: 'Unacknowledged'}], 'count');
  const ratesChart = lineChart(rates, RATES.map(([, label]) => ({label})), 'rate');
  ctx.onLeave(() => { queuedChart.destroy(); ratesChart.destroy(); });

  ctx.every(async () => {
    const [o, nodes] = await Promise.all([
      get(apiPath('overview') + query(HISTORY)),
      ctx.caps.seesAll ? get(apiPath('nodes')) : Promise.resolve(null),
    ]);
    const t = o.object_totals || {}, q = o.queue_totals || {};
    fill(tiles,
      tile('Connections', num(t.connections), 'connections'), tile('Channels', num(t.channels), 'channels'),
      tile('Exchanges', num(t.exchanges), 'exchanges'), tile('Queues', num(t.queues), 'queues'),
      tile('Consumers', num(t.consumers), 'consumers'), tile('Ready', num(q.messages_ready), 'ready'),
      tile('Unacked', num(q.messages_unacknowledged), 'unacked'), tile('Total queued', num(q.messages), 'messages'));
    const ready = gaugePoints(q.messages_ready_details);
    queuedChart.update([ready, gaugePoints(q.messages_unacknowledged_details)]);
    const stats = o.message_stats || {};
    ratesChart.update(RATES.map(([key]) => ratePoints(stats[key + '_details'], ready)));
    const span = ready.length > 1 ? `${duration(ready[ready.length - 1].x - ready[0].x)} of history` : 'Collecting history';
    status.textContent = `${span}, sampled every ${duration(o.statistics_interval_ms)}; ` +
      `updated every ${duration(ctx.pollMs)}. ${o.product_name} ${o.product_version} ` +
      `(RabbitMQ API ${o.rabbitmq_version}).`;

    const n = nodes && nodes[0];
    if (n) {
      fill(node,
        h('div', {class: 'fact'}, h('span', {class: 'fact-label'}, 'Name'), n.name),
        h('div', {class: 'fact'}, h('span', {class: 'fact-label'}, 'Version'), `${o.product_name} ${o.product_version}`),
        h('div', {class: 'fact'}, h('span', {class: 'fact-label'}, 'Uptime'), duration(n.uptime)),
        // Warren's memory alarm compares the messages' memory with the watermark (mem_limit).
        gauge('Message memory', n.message_memory_bytes, n.mem_limit, bytes, n.mem_alarm),
        h('div', {class: 'fact'}, h('span', {class: 'fact-label'}, 'Resident memory'), bytes(n.mem_used)),
        h('div', {class: ['fact', n.disk_free_alarm && 'alarmed']}, h('span', {class: 'fact-label'}, 'Disk free'),
          `${bytes(n.disk_free)} (alarm below ${bytes(n.disk_free_limit)})`),
        gauge('File descriptors', n.fd_used, n.fd_total, num),
        h('div', {class: 'fact'}, h('span', {class: 'fact-label'}, 'Message store'), `${bytes(n.store_bytes)} in ${num(n.store_segments)} segments`),
        h('div', {class: 'fact'}, h('span', {class: 'fact-label'}, 'Processors'), num(n.processors)));
    } else {
      fill(node,
        h('div', {class: 'fact'}, h('span', {class: 'fact-label'}, 'Name'), o.node),
        h('div', {class: 'fact'}, h('span', {class: 'fact-label'}, 'Version'), `${o.product_name} ${o.product_version}`),
        h('p', {class: 'muted'}, 'Memory, disk and file descriptors are shown to monitoring and administrator users.'));
    }
    const c = o.churn_rates || {};
    fill(churn,
      h('div', {class: 'fact'}, h('span', {class: 'fact-label'}, 'Connections opened / closed'), `${num(c.connection_created)} / ${num(c.connection_closed)}`),
      h('div', {class: 'fact'}, h('span', {class: 'fact-label'}, 'Channels opened / closed'), `${num(c.channel_created)} / ${num(c.channel_closed)}`),
      h('div', {class: 'fact'}, h('span', {class: 'fact-label'}, 'Queues declared / deleted'), `${num(c.queue_declared)} / ${num(c.queue_deleted)}`),
      h('div', {class: 'fact'}, h('span', {class: 'fact-label'}, 'Publish rate now'), rate(stats.publish_details && stats.publish_details.rate)));
    fill(listeners, (o.listeners || []).map((l) =>
      h('tr', null, h('td', null, l.protocol), h('td', null, l.ip_address), h('td', null, String(l.port)))));
    main.dataset.updated = String(Date.now());
  });
}
