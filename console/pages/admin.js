// console/pages/admin.js: the Admin section: users (tags, password, permissions per vhost),
// virtual hosts, and the tabs kept in policies.js and definitions.js. Administrators see
// every tab; policymakers see policies and limits (as the API allows them).

import {apiPath, del, get, put, query} from '../lib/api.js';
import {h, fill, link, num, rate} from '../lib/dom.js';
import {actionButton, form, problem, section} from '../lib/forms.js';
import {pagedTable} from '../lib/table.js';
import {policiesTab, operatorPoliciesTab, limitsTab} from './policies.js';
import {definitionsTab} from './definitions.js';

const TABS = [
  ['users', 'Users', (caps) => caps.admin],
  ['vhosts', 'Virtual hosts', (caps) => caps.admin],
  ['policies', 'Policies', (caps) => caps.policies],
  ['operator-policies', 'Operator policies', (caps) => caps.admin],
  ['limits', 'Limits', (caps) => caps.policies],
  ['definitions', 'Definitions', (caps) => caps.admin],
];

export default async function admin(main, ctx, tab, item) {
  const tabs = TABS.filter(([, , allowed]) => allowed(ctx.caps));
  if (!tabs.length) {
    fill(main, problem('The Admin section is for administrator and policymaker users.'));
    return;
  }
  const current = tab && tabs.some(([id]) => id === tab) ? tab : tabs[0][0];
  const body = h('div');
  fill(main, h('h1', null, 'Admin'),
    h('nav', {class: 'tabs', 'aria-label': 'Admin'}, tabs.map(([id, label]) =>
      h('a', {href: link('admin', id), class: id === current ? 'active' : null, dataset: {tab: id}}, label))),
    body);
  if (tab && tab !== current) {
    body.append(problem('That tab is for administrators only.'));
    return;
  }
  const render = {
    users: item === undefined ? usersTab : userPage, vhosts: vhostsTab, policies: policiesTab,
    'operator-policies': operatorPoliciesTab, limits: limitsTab, definitions: definitionsTab,
  }[current];
  await render(body, ctx, item);
}

// ---- users ---------------------------------------------------------------------------------

const TAG_CHOICES = ['administrator', 'monitoring', 'policymaker', 'management'];

// A tags input with buttons that add RabbitMQ's tags (as its console offers).
function tagButtons(input) {
  return h('div', {class: 'hints'}, 'Set: ', TAG_CHOICES.map((tag) => h('button', {type: 'button', class: 'link',
    onclick: () => {
      const tags = input.value.split(',').map((t) => t.trim()).filter(Boolean);
      if (!tags.includes(tag)) tags.push(tag);
      input.value = tags.join(', ');
    }}, tag)), h('button', {type: 'button', class: 'link', onclick: () => { input.value = ''; }}, 'none'));
}

const tagList = (text) => text.split(',').map((t) => t.trim()).filter(Boolean);

async function usersTab(body, ctx) {
  let access = new Map();
  const table = pagedTable({
    id: 'users',
    columns: [
      {key: 'name', label: 'Name', sort: 'name', cls: 'name', render: (u) => h('a', {href: link('admin', 'users', u.name)}, u.name)},
      {key: 'tags', label: 'Tags', render: (u) => (u.tags.length ? u.tags.join(', ') : h('span', {class: 'muted'}, 'none'))},
      {key: 'vhosts', label: 'Can access virtual hosts', render: (u) => (access.get(u.name) || []).join(', ') || h('span', {class: 'muted'}, 'none')},
      {key: 'password', label: 'Has password', render: (u) => (u.password_hash ? 'yes' : 'no')},
    ],
    empty: 'No users.',
    async load(params) {
      const [page, permissions] = await Promise.all([get(apiPath('users') + query(params)), get(apiPath('permissions'))]);
      access = new Map();
      for (const p of permissions) access.set(p.user, [...(access.get(p.user) || []), p.vhost]);
      return page;
    },
  });
  ctx.onLeave(table.destroy);
  const add = form({
    fields: [
      {name: 'name', label: 'User name', required: true},
      {name: 'password', label: 'Password', type: 'password', autocomplete: 'new-password'},
      {name: 'tags', label: 'Tags (comma-separated)'},
    ],
    submitLabel: 'Add user',
    async onSubmit(v) {
      const bodyJson = {tags: tagList(v.tags)};
      if (v.password) bodyJson.password = v.password;
      await put(apiPath('users', v.name), bodyJson);
      table.refresh();
      return `User "${v.name}" added${v.password ? '' : ' without a password (it cannot log in)'}; give it permissions on its page.`;
    },
  });
  add.querySelector('.fields').append(tagButtons(add.fields.tags));
  fill(body, table.element, section('Add a user', add, true));
  table.refresh();
}

async function userPage(body, ctx, name) {
  let user;
  try {
    user = await get(apiPath('users', name));
  } catch (err) {
    if (err.status === 404) {
      fill(body, problem(`There is no user "${name}".`));
      return;
    }
    throw err;
  }
  const permissions = h('div');
  async function loadPermissions() {
    const list = await get(apiPath('users', name, 'permissions'));
    fill(permissions, h('div', {class: 'table-scroll'}, h('table', {class: 'list'},
      h('thead', null, h('tr', null, ['Virtual host', 'Configure', 'Write', 'Read', ''].map((t) => h('th', null, t)))),
      h('tbody', null, list.length ? list.map((p) => h('tr', null,
        h('td', null, p.vhost), h('td', null, h('code', null, p.configure)), h('td', null, h('code', null, p.write)),
        h('td', null, h('code', null, p.read)),
        h('td', null, actionButton('Clear', async () => {
          await del(apiPath('permissions', p.vhost, name));
          loadPermissions();
          return `Permissions of "${name}" in "${p.vhost}" cleared.`;
        }, {danger: true, confirm: `Clear the permissions of "${name}" in "${p.vhost}"?`}))))
        : h('tr', null, h('td', {colspan: 5, class: 'muted'}, 'No permissions: this user can reach no virtual host.'))))));
  }
  await loadPermissions();
  const update = form({
    title: 'Update this user',
    fields: [
      {name: 'password', label: 'New password (empty: keep it)', type: 'password', autocomplete: 'new-password'},
      {name: 'tags', label: 'Tags (comma-separated)', value: user.tags.join(', '), keep: true},
    ],
    submitLabel: 'Update user',
    reset: false,
    async onSubmit(v) {
      const change = {tags: tagList(v.tags)};
      if (v.password) change.password = v.password;
      await put(apiPath('users', name), change);
      update.fields.password.value = '';
      return v.password ? 'Password and tags updated.' : 'Tags updated.';
    },
  });
  update.querySelector('.fields').append(tagButtons(update.fields.tags));
  const grant = form({
    title: 'Set permissions',
    fields: [
      {name: 'vhost', label: 'Virtual host', type: 'select', options: ctx.vhosts, value: ctx.vhost() || ctx.vhosts[0]},
      {name: 'configure', label: 'Configure regexp', value: '.*', keep: true},
      {name: 'write', label: 'Write regexp', value: '.*', keep: true},
      {name: 'read', label: 'Read regexp', value: '.*', keep: true},
    ],
    submitLabel: 'Set permission',
    reset: false,
    async onSubmit(v) {
      await put(apiPath('permissions', v.vhost, name), {configure: v.configure, write: v.write, read: v.read});
      loadPermissions();
      return `Permissions of "${name}" in "${v.vhost}" set.`;
    },
  });
  fill(body,
    h('p', {class: 'crumbs'}, h('a', {href: link('admin', 'users')}, 'Users')),
    h('h2', null, 'User ', h('span', {class: 'object-name'}, name)),
    h('section', {class: 'panel-box'}, h('h3', null, 'Permissions'), permissions, grant),
    h('section', {class: 'panel-box'}, update),
    h('section', {class: 'panel-box danger-zone'}, h('h3', null, 'Delete'),
      name === ctx.user ? h('p', {class: 'muted'}, 'This is you: deleting it ends this session.') : null,
      actionButton('Delete user', async () => {
        await del(apiPath('users', name));
        ctx.go(link('admin', 'users'));
        return `User "${name}" deleted.`;
      }, {danger: true, confirm: `Delete the user "${name}"? Its connections stay open until they close.`})));
}

// ---- virtual hosts --------------------------------------------------------------------------

async function vhostsTab(body, ctx) {
  const table = pagedTable({
    id: 'vhosts',
    columns: [
      {key: 'name', label: 'Name', sort: 'name', cls: 'name', render: (v) => v.name},
      {key: 'ready', label: 'Ready', sort: 'messages_ready', descending: true, cls: 'n', render: (v) => num(v.messages_ready)},
      {key: 'unacked', label: 'Unacked', sort: 'messages_unacknowledged', descending: true, cls: 'n', render: (v) => num(v.messages_unacknowledged)},
      {key: 'total', label: 'Total', sort: 'messages', descending: true, cls: 'n', render: (v) => num(v.messages)},
      {key: 'publish', label: 'Publish', cls: 'n', render: (v) => rate(v.message_stats && v.message_stats.publish_details && v.message_stats.publish_details.rate)},
      {key: 'delete', label: '', render: (v) => actionButton('Delete', async () => {
        await del(apiPath('vhosts', v.name));
        table.refresh();
        ctx.reloadVhosts();
        return `Virtual host "${v.name}" deleted.`;
      }, {danger: true, confirm: `Delete the virtual host "${v.name}" with all its queues, exchanges and messages?`})},
    ],
    empty: 'No virtual hosts.',
    load: (params) => get(apiPath('vhosts') + query(params)),
  });
  ctx.onLeave(table.destroy);
  fill(body, table.element, section('Add a virtual host', form({
    fields: [{name: 'name', label: 'Name', required: true}],
    submitLabel: 'Add virtual host',
    async onSubmit(v) {
      await put(apiPath('vhosts', v.name), {});
      table.refresh();
      ctx.reloadVhosts();
      return `Virtual host "${v.name}" added; give users permissions in it from their pages.`;
    },
  }), true));
  ctx.every(table.refresh);
}
