// console/pages/queues.js: every queue the user may see, one page at a time: the broker
// sorts, filters and pages (so 10,000 queues cost the browser one page of rows), and the
// page is fetched again every few seconds. Below it, the declare form.

import {apiPath, get, put, query} from '../lib/api.js';
import {h, fill, link, num, rate, duration} from '../lib/dom.js';
import {form, section} from '../lib/forms.js';
import {QUEUE_ARGUMENTS} from '../lib/hints.js';
import {pagedTable} from '../lib/table.js';
import {featureMarks} from '../lib/widgets.js';

// Only what the table shows travels (?columns=): a queue's full JSON is several times larger.
const COLUMNS = ['name', 'vhost', 'type', 'state', 'durable', 'auto_delete', 'exclusive', 'arguments', 'policy',
  'operator_policy', 'consumers', 'messages', 'messages_ready', 'messages_unacknowledged', 'oldest_message_age_ms',
  'message_stats.publish_details.rate', 'message_stats.deliver_get_details.rate', 'message_stats.ack_details.rate'];

const stat = (q, key) => q.message_stats && q.message_stats[key] ? q.message_stats[key].rate : 0;

export default async function queues(main, ctx) {
  const vhost = ctx.vhost();
  const columns = [
    !vhost && {key: 'vhost', label: 'Virtual host', sort: 'vhost', render: (q) => q.vhost},
    {key: 'name', label: 'Name', sort: 'name', cls: 'name', render: (q) => h('a', {href: link('queues', q.vhost, q.name)}, q.name)},
    {key: 'features', label: 'Features', cls: 'opt', render: featureMarks},
    {key: 'state', label: 'State', cls: 'opt', render: (q) => q.state},
    {key: 'ready', label: 'Ready', sort: 'messages_ready', descending: true, cls: 'n', render: (q) => num(q.messages_ready)},
    {key: 'unacked', label: 'Unacked', sort: 'messages_unacknowledged', descending: true, cls: 'n', render: (q) => num(q.messages_unacknowledged)},
    {key: 'total', label: 'Total', sort: 'messages', descending: true, cls: 'n', render: (q) => num(q.messages)},
    {key: 'age', label: 'Oldest', sort: 'oldest_message_age_ms', descending: true, cls: 'n opt',
      render: (q) => (q.messages_ready ? duration(q.oldest_message_age_ms) : '–')},
    {key: 'in', label: 'In', sort: 'message_stats.publish_details.rate', descending: true, cls: 'n', render: (q) => rate(stat(q, 'publish_details'))},
    {key: 'out', label: 'Out', sort: 'message_stats.deliver_get_details.rate', descending: true, cls: 'n',
      render: (q) => rate(stat(q, 'deliver_get_details'))},
    {key: 'ack', label: 'Ack', sort: 'message_stats.ack_details.rate', descending: true, cls: 'n opt', render: (q) => rate(stat(q, 'ack_details'))},
    {key: 'consumers', label: 'Consumers', sort: 'consumers', descending: true, cls: 'n', render: (q) => num(q.consumers)},
  ].filter(Boolean);
  const table = pagedTable({
    id: 'queues',
    columns,
    empty: 'No queues.',
    load: (params) => get((vhost ? apiPath('queues', vhost) : apiPath('queues')) + query({...params, columns: COLUMNS.join(',')})),
  });
  ctx.onLeave(table.destroy);
  fill(main, h('h1', null, 'Queues', vhost && h('span', {class: 'muted'}, ` in ${vhost}`)), table.element);
  if (ctx.caps.write) main.append(section('Add a queue', declareForm(ctx, vhost, table.refresh)));
  ctx.every(table.refresh);
}

function declareForm(ctx, vhost, onChange) {
  return form({
    fields: [
      {name: 'vhost', label: 'Virtual host', type: 'select', options: ctx.vhosts, value: vhost || ctx.vhosts[0]},
      {name: 'name', label: 'Name', required: true},
      {name: 'durable', label: 'Durability', type: 'select', options: [['true', 'Durable'], ['false', 'Transient']], value: 'true'},
      {name: 'auto_delete', label: 'Auto delete', type: 'select', options: [['false', 'No'], ['true', 'Yes']], value: 'false'},
      {name: 'arguments', label: 'Arguments', type: 'args', hints: QUEUE_ARGUMENTS},
    ],
    submitLabel: 'Add queue',
    async onSubmit(v) {
      await put(apiPath('queues', v.vhost, v.name), {
        durable: v.durable === 'true', auto_delete: v.auto_delete === 'true', arguments: v.arguments});
      onChange();
      return `Queue "${v.name}" declared.`;
    },
  });
}
