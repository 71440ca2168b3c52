// console/pages/policies.js: the Admin tabs for policies (policymakers and administrators),
// operator policies (administrators) and virtual-host limits (everyone reads them in the API;
// administrators set them).

import {apiPath, del, get, put, query} from '../lib/api.js';
import {h, fill, num, tableView} from '../lib/dom.js';
import {actionButton, form, section} from '../lib/forms.js';
import {OPERATOR_POLICY_KEYS, POLICY_KEYS} from '../lib/hints.js';
import {pagedTable} from '../lib/table.js';

// One tab for both kinds: resource is "policies" or "operator-policies".
async function policyTab(body, ctx, resource, keys, intro) {
  const vhost = ctx.vhost();
  const table = pagedTable({
    id: resource,
    columns: [
      !vhost && {key: 'vhost', label: 'Virtual host', sort: 'vhost', render: (p) => p.vhost},
      {key: 'name', label: 'Name', sort: 'name', cls: 'name', render: (p) => p.name},
      {key: 'pattern', label: 'Pattern', sort: 'pattern', render: (p) => h('code', null, p.pattern)},
      {key: 'apply', label: 'Apply to', sort: 'apply-to', render: (p) => p['apply-to']},
      {key: 'definition', label: 'Definition', render: (p) => tableView(p.definition)},
      {key: 'priority', label: 'Priority', sort: 'priority', descending: true, cls: 'n', render: (p) => num(p.priority)},
      {key: 'delete', label: '', render: (p) => actionButton('Delete', async () => {
        await del(apiPath(resource, p.vhost, p.name));
        table.refresh();
        return `Policy "${p.name}" deleted.`;
      }, {danger: true, confirm: `Delete the policy "${p.name}" of "${p.vhost}"?`})},
    ].filter(Boolean),
    empty: 'No policies.',
    load: (params) => get((vhost ? apiPath(resource, vhost) : apiPath(resource)) + query(params)),
  });
  ctx.onLeave(table.destroy);
  const applyTo = resource === 'policies'
    ? [['all', 'Exchanges and queues'], ['queues', 'Queues'], ['exchanges', 'Exchanges']] : [['queues', 'Queues']];
  fill(body, h('p', {class: 'muted'}, intro), table.element, section('Add or update a policy', form({
    fields: [
      {name: 'vhost', label: 'Virtual host', type: 'select', options: ctx.vhosts, value: vhost || ctx.vhosts[0]},
      {name: 'name', label: 'Name', required: true},
      {name: 'pattern', label: 'Pattern (regexp on names)', required: true, placeholder: '^orders\\.'},
      {name: 'apply', label: 'Apply to', type: 'select', options: applyTo, value: applyTo[0][0]},
      {name: 'priority', label: 'Priority', type: 'number', value: '0'},
      {name: 'definition', label: 'Definition', type: 'args', hints: keys},
    ],
    submitLabel: 'Add / update policy',
    async onSubmit(v) {
      await put(apiPath(resource, v.vhost, v.name), {pattern: v.pattern, definition: v.definition,
        priority: Number(v.priority || 0), 'apply-to': v.apply});
      table.refresh();
      return `Policy "${v.name}" saved.`;
    },
  }), true));
  table.refresh();
}

export function policiesTab(body, ctx) {
  return policyTab(body, ctx, 'policies', POLICY_KEYS,
    'A policy sets queue and exchange options (TTL, length limits, dead-lettering, alternate exchange) for every name its pattern matches; the highest priority wins.');
}

export function operatorPoliciesTab(body, ctx) {
  return policyTab(body, ctx, 'operator-policies', OPERATOR_POLICY_KEYS,
    'Operator policies cap what users may set: for each key the stricter of the policy and the operator policy applies.');
}

const LIMITS = [['max-connections', 'Max connections'], ['max-queues', 'Max queues']];

export async function limitsTab(body, ctx) {
  const list = h('div');
  async function load() {
    const limits = await get(apiPath('vhost-limits'));
    fill(list, h('div', {class: 'table-scroll'}, h('table', {class: 'list'},
      h('thead', null, h('tr', null, ['Virtual host', 'Limit', 'Value', ''].map((t) => h('th', null, t)))),
      h('tbody', null, limits.flatMap((l) => Object.entries(l.value || {}).map(([name, value]) => h('tr', null,
        h('td', null, l.vhost), h('td', null, name), h('td', {class: 'n'}, num(value)),
        h('td', null, ctx.caps.admin ? actionButton('Clear', async () => {
          await del(apiPath('vhost-limits', l.vhost, name));
          load();
          return `Limit ${name} of "${l.vhost}" cleared.`;
        }, {danger: true}) : null)))).concat(limits.length ? [] : [h('tr', null, h('td', {colspan: 4, class: 'muted'}, 'No limits.'))])))));
  }
  fill(body, h('p', {class: 'muted'}, 'Limits cap how many connections or queues a virtual host may hold (-1: none).'), list);
  if (ctx.caps.admin)
    body.append(section('Set a limit', form({
      fields: [
        {name: 'vhost', label: 'Virtual host', type: 'select', options: ctx.vhosts, value: ctx.vhost() || ctx.vhosts[0]},
        {name: 'limit', label: 'Limit', type: 'select', options: LIMITS, value: 'max-connections'},
        {name: 'value', label: 'Value', type: 'number', required: true},
      ],
      submitLabel: 'Set limit',
      async onSubmit(v) {
        await put(apiPath('vhost-limits', v.vhost, v.limit), {value: Number(v.value)});
        load();
        return `Limit ${v.limit} of "${v.vhost}" set.`;
      },
    }), true));
  await load();
}
