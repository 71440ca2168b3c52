// console/pages/connections.js: AMQP connections (list and one connection, with its client
// properties and channels, and closing it with a reason: DELETE /api/connections/NAME with
// X-Reason) and channels (prefetch, unacknowledged, rates). Management users see their own.

import {apiPath, del, get, query} from '../lib/api.js';
import {h, fill, link, num, rate, bytes, dateTime, tableView} from '../lib/dom.js';
import {confirmDialog, notify, problem} from '../lib/forms.js';
import {pagedTable} from '../lib/table.js';

const CONNECTION_COLUMNS = ['name', 'vhost', 'user', 'state', 'channels', 'protocol', 'peer_host', 'peer_port',
  'client_properties.product', 'client_properties.version', 'client_properties.platform', 'connected_at',
  'recv_oct_details.rate', 'send_oct_details.rate', 'timeout'];

const client = (c) => {
  const p = c.client_properties || {};
  return [p.product, p.version].filter(Boolean).join(' ') || '–';
};

// Asks for a reason, closes, reports. Returns whether it closed.
async function closeConnection(name) {
  const reason = await confirmDialog(`Close the connection "${name}"? The client gets 320 CONNECTION_FORCED with this reason:`,
    {confirmLabel: 'Close connection', danger: true, reason: {label: 'Reason', value: 'Closed from the Warren console'}});
  if (reason === false) return false;
  try {
    await del(apiPath('connections', name), {headers: {'X-Reason': reason}});
    notify(`Connection closed.`);
    return true;
  } catch (err) {
    notify(`Close connection: ${err.message}`, 'error');
    return false;
  }
}

export default async function connections(main, ctx, name) {
  if (name !== undefined) return connection(main, ctx, name);
  const vhost = ctx.vhost();
  const table = pagedTable({
    id: 'connections',
    columns: [
      {key: 'name', label: 'Name', sort: 'name', cls: 'name', render: (c) => h('a', {href: link('connections', c.name)}, c.name)},
      !vhost && {key: 'vhost', label: 'Virtual host', sort: 'vhost', render: (c) => c.vhost},
      {key: 'user', label: 'User', sort: 'user', render: (c) => c.user},
      {key: 'state', label: 'State', sort: 'state', render: (c) => h('span', {class: ['state', c.state]}, c.state)},
      {key: 'client', label: 'Client', cls: 'opt', render: client},
      {key: 'channels', label: 'Channels', sort: 'channels', descending: true, cls: 'n', render: (c) => num(c.channels)},
      {key: 'recv', label: 'From client', sort: 'recv_oct_details.rate', descending: true, cls: 'n', render: (c) => bytes(c.recv_oct_details && c.recv_oct_details.rate) + '/s'},
      {key: 'send', label: 'To client', sort: 'send_oct_details.rate', descending: true, cls: 'n', render: (c) => bytes(c.send_oct_details && c.send_oct_details.rate) + '/s'},
      {key: 'connected', label: 'Connected', sort: 'connected_at', cls: 'opt', render: (c) => dateTime(c.connected_at)},
      ctx.caps.write && {key: 'close', label: '', render: (c) => h('button', {type: 'button', class: 'danger small',
        onclick: async () => { if (await closeConnection(c.name)) table.refresh(); }}, 'Close')},
    ].filter(Boolean),
    empty: ctx.caps.seesAll ? 'No connections.' : 'You have no connections open.',
    load: (params) => get((vhost ? apiPath('vhosts', vhost, 'connections') : apiPath('connections')) +
      query({...params, columns: CONNECTION_COLUMNS.join(',')})),
  });
  ctx.onLeave(table.destroy);
  fill(main, h('h1', null, 'Connections', vhost && h('span', {class: 'muted'}, ` in ${vhost}`)), table.element,
    !ctx.caps.seesAll && h('p', {class: 'muted small'}, 'Management users see their own connections only.'));
  ctx.every(table.refresh);
}

function fact(label, value) {
  return h('div', {class: 'fact'}, h('span', {class: 'fact-label'}, label), value);
}

async function connection(main, ctx, name) {
  const details = h('div', {class: 'facts'});
  const props = h('div');
  const channels = h('div');
  fill(main,
    h('p', {class: 'crumbs'}, h('a', {href: '#/connections'}, 'Connections')),
    h('h1', null, 'Connection ', h('span', {class: 'object-name'}, name)),
    h('div', {class: 'columns'},
      h('section', {class: 'panel-box'}, h('h2', null, 'Details'), details),
      h('section', {class: 'panel-box'}, h('h2', null, 'Client properties'), props)),
    h('section', {class: 'panel-box'}, h('h2', null, 'Channels'), channels));
  if (ctx.caps.write)
    main.append(h('section', {class: 'panel-box danger-zone'}, h('h2', null, 'Close'),
      h('button', {type: 'button', class: 'danger', onclick: async () => { if (await closeConnection(name)) ctx.go('#/connections'); }},
        'Close this connection')));
  ctx.every(async () => {
    let c;
    try {
      c = await get(apiPath('connections', name));
    } catch (err) {
      if (err.status === 404) {
        fill(main, problem(`The connection "${name}" is closed (or is not yours to see).`));
        return false;
      }
      throw err;
    }
    fill(details,
      fact('User', c.user), fact('Virtual host', c.vhost), fact('State', c.state), fact('Protocol', c.protocol),
      fact('Client address', `${c.peer_host}:${c.peer_port}`), fact('Connected', dateTime(c.connected_at)),
      fact('Heartbeat', `${c.timeout} s`), fact('Frame max', num(c.frame_max)), fact('Channel max', num(c.channel_max)),
      fact('Authentication', c.auth_mechanism),
      fact('From client', `${bytes(c.recv_oct)} (${bytes(c.recv_oct_details && c.recv_oct_details.rate)}/s)`),
      fact('To client', `${bytes(c.send_oct)} (${bytes(c.send_oct_details && c.send_oct_details.rate)}/s)`));
    fill(props, tableView(c.client_properties));
    const list = await get(apiPath('connections', name, 'channels'));
    fill(channels, channelTable(list));
    main.dataset.updated = String(Date.now());
    return true;
  });
}

const stat = (c, key) => (c.message_stats && c.message_stats[key] ? c.message_stats[key].rate : 0);
const mode = (c) => [c.confirm && 'C', c.transactional && 'T'].filter(Boolean).join(' ') || '–';

function channelTable(list) {
  return h('div', {class: 'table-scroll'}, h('table', {class: 'list'},
    h('thead', null, h('tr', null, ['Channel', 'Mode', 'Consumers', 'Prefetch', 'Unacked', 'Publish', 'Deliver', 'Ack']
      .map((t, i) => h('th', {class: i > 1 ? 'n' : null}, t)))),
    h('tbody', null, list.length ? list.map((c) => h('tr', null,
      h('td', null, c.name), h('td', null, mode(c)), h('td', {class: 'n'}, num(c.consumer_count)),
      h('td', {class: 'n'}, num(c.prefetch_count)), h('td', {class: 'n'}, num(c.messages_unacknowledged)),
      h('td', {class: 'n'}, rate(stat(c, 'publish_details'))), h('td', {class: 'n'}, rate(stat(c, 'deliver_get_details'))),
      h('td', {class: 'n'}, rate(stat(c, 'ack_details'))))) : h('tr', null, h('td', {colspan: 8, class: 'muted'}, 'No channels.')))));
}

export async function channelsPage(main, ctx) {
  const vhost = ctx.vhost();
  const table = pagedTable({
    id: 'channels',
    columns: [
      {key: 'name', label: 'Channel', sort: 'name', cls: 'name',
        render: (c) => h('a', {href: link('connections', c.connection_details ? c.connection_details.name : '')}, c.name)},
      !vhost && {key: 'vhost', label: 'Virtual host', sort: 'vhost', render: (c) => c.vhost},
      {key: 'user', label: 'User', sort: 'user', cls: 'opt', render: (c) => c.user},
      {key: 'mode', label: 'Mode', render: mode},
      {key: 'consumers', label: 'Consumers', sort: 'consumer_count', descending: true, cls: 'n', render: (c) => num(c.consumer_count)},
      {key: 'prefetch', label: 'Prefetch', sort: 'prefetch_count', descending: true, cls: 'n', render: (c) => num(c.prefetch_count)},
      {key: 'unacked', label: 'Unacked', sort: 'messages_unacknowledged', descending: true, cls: 'n', render: (c) => num(c.messages_unacknowledged)},
      {key: 'publish', label: 'Publish', sort: 'message_stats.publish_details.rate', descending: true, cls: 'n', render: (c) => rate(stat(c, 'publish_details'))},
      {key: 'deliver', label: 'Deliver', sort: 'message_stats.deliver_get_details.rate', descending: true, cls: 'n', render: (c) => rate(stat(c, 'deliver_get_details'))},
      {key: 'ack', label: 'Ack', sort: 'message_stats.ack_details.rate', descending: true, cls: 'n opt', render: (c) => rate(stat(c, 'ack_details'))},
    ].filter(Boolean),
    empty: ctx.caps.seesAll ? 'No channels.' : 'You have no channels open.',
    load: (params) => get((vhost ? apiPath('vhosts', vhost, 'channels') : apiPath('channels')) + query(params)),
  });
  ctx.onLeave(table.destroy);
  fill(main, h('h1', null, 'Channels', vhost && h('span', {class: 'muted'}, ` in ${vhost}`)), table.element);
  ctx.every(table.refresh);
}
