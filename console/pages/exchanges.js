// console/pages/exchanges.js: every exchange the user may see, paged by the broker, with
// their rates; below, the declare form.

import {apiPath, get, put, query} from '../lib/api.js';
import {h, fill, rate, exchangeLabel, exchangeLink} from '../lib/dom.js';
import {form, section} from '../lib/forms.js';
import {EXCHANGE_ARGUMENTS} from '../lib/hints.js';
import {pagedTable} from '../lib/table.js';
import {featureMarks} from '../lib/widgets.js';

const COLUMNS = ['name', 'vhost', 'type', 'durable', 'auto_delete', 'internal', 'arguments', 'policy',
  'message_stats.publish_in_details.rate', 'message_stats.publish_out_details.rate'];

const stat = (x, key) => (x.message_stats && x.message_stats[key] ? x.message_stats[key].rate : 0);

export default async function exchanges(main, ctx) {
  const vhost = ctx.vhost();
  const table = pagedTable({
    id: 'exchanges',
    columns: [
      !vhost && {key: 'vhost', label: 'Virtual host', sort: 'vhost', render: (x) => x.vhost},
      {key: 'name', label: 'Name', sort: 'name', cls: 'name', render: (x) => h('a', {href: exchangeLink(x.vhost, x.name)}, exchangeLabel(x.name))},
      {key: 'type', label: 'Type', sort: 'type', render: (x) => x.type},
      {key: 'features', label: 'Features', cls: 'opt', render: featureMarks},
      {key: 'in', label: 'Rate in', sort: 'message_stats.publish_in_details.rate', descending: true, cls: 'n', render: (x) => rate(stat(x, 'publish_in_details'))},
      {key: 'out', label: 'Rate out', sort: 'message_stats.publish_out_details.rate', descending: true, cls: 'n', render: (x) => rate(stat(x, 'publish_out_details'))},
    ].filter(Boolean),
    empty: 'No exchanges.',
    load: (params) => get((vhost ? apiPath('exchanges', vhost) : apiPath('exchanges')) + query({...params, columns: COLUMNS.join(',')})),
  });
  ctx.onLeave(table.destroy);
  fill(main, h('h1', null, 'Exchanges', vhost && h('span', {class: 'muted'}, ` in ${vhost}`)), table.element);
  if (ctx.caps.write) {
    const types = ((await get(apiPath('overview'))).exchange_types || []).map((t) => t.name);
    main.append(section('Add an exchange', form({
      fields: [
        {name: 'vhost', label: 'Virtual host', type: 'select', options: ctx.vhosts, value: vhost || ctx.vhosts[0]},
        {name: 'name', label: 'Name', required: true},
        {name: 'type', label: 'Type', type: 'select', options: types, value: 'direct'},
        {name: 'durable', label: 'Durability', type: 'select', options: [['true', 'Durable'], ['false', 'Transient']], value: 'true'},
        {name: 'auto_delete', label: 'Auto delete', type: 'select', options: [['false', 'No'], ['true', 'Yes']], value: 'false'},
        {name: 'internal', label: 'Internal', type: 'select', options: [['false', 'No'], ['true', 'Yes']], value: 'false'},
        {name: 'arguments', label: 'Arguments', type: 'args', hints: EXCHANGE_ARGUMENTS},
      ],
      submitLabel: 'Add exchange',
      async onSubmit(v) {
        await put(apiPath('exchanges', v.vhost, v.name), {type: v.type, durable: v.durable === 'true',
          auto_delete: v.auto_delete === 'true', internal: v.internal === 'true', arguments: v.arguments});
        table.refresh();
        return `Exchange "${v.name}" declared.`;
      },
    })));
  }
  ctx.every(table.refresh);
}
