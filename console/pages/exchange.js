// console/pages/exchange.js: one exchange: its rates, bindings both ways (from it, to it),
// publishing a message, binding, deleting.

import {del, exchangePath, get} from '../lib/api.js';
import {h, fill, rate, exchangeLabel, tableView} from '../lib/dom.js';
import {actionButton, problem, section} from '../lib/forms.js';
import {bindForm, bindingTable, featureMarks, publishForm} from '../lib/widgets.js';

function fact(label, value) {
  return h('div', {class: 'fact'}, h('span', {class: 'fact-label'}, label), value);
}

export default async function exchange(main, ctx, vhost, pathName) {
  const name = pathName === 'amq.default' ? '' : pathName;
  const path = exchangePath(vhost, name);
  let x;
  try {
    x = await get(path);
  } catch (err) {
    if (err.status === 404) {
      fill(main, problem(`There is no exchange "${name}" in virtual host "${vhost}".`));
      return;
    }
    throw err;
  }
  const details = h('div', {class: 'facts'});
  const from = h('div');
  const to = h('div');
  fill(main,
    h('p', {class: 'crumbs'}, h('a', {href: '#/exchanges'}, 'Exchanges'), ' › ', vhost),
    h('h1', null, 'Exchange ', h('span', {class: 'object-name'}, exchangeLabel(name))),
    h('section', {class: 'panel-box'}, h('h2', null, 'Details'), details),
    h('div', {class: 'columns'},
      h('section', {class: 'panel-box'}, h('h2', null, 'Bindings from this exchange'), from),
      h('section', {class: 'panel-box'}, h('h2', null, 'Bindings to this exchange'), to)));
  // The default exchange's implicit bindings (one per queue) can be many: not listed here.
  async function loadBindings() {
    try {
      if (name === '') {
        fill(from, h('p', {class: 'muted'}, 'The default exchange routes to the queue named by the routing key.'));
      } else {
        fill(from, bindingTable(await get(path + '/bindings/source'), 'destination', ctx.caps.write, loadBindings));
      }
      fill(to, bindingTable(await get(path + '/bindings/destination'), 'source', ctx.caps.write, loadBindings));
    } catch (err) {
      fill(from, problem(err.message));
    }
  }
  await loadBindings();

  if (ctx.caps.write && !x.internal) main.append(section('Publish a message', publishForm(vhost, name), true));
  else if (x.internal) main.append(h('p', {class: 'muted'}, 'This exchange is internal: clients cannot publish to it.'));
  if (ctx.caps.write && name !== '') {
    main.append(section('Add a binding', bindForm(vhost, {source: name}, loadBindings)));
    if (!name.startsWith('amq.'))
      main.append(h('section', {class: 'panel-box danger-zone'}, h('h2', null, 'Delete'),
        actionButton('Delete exchange', async () => {
          await del(path);
          ctx.go('#/exchanges');
          return `Exchange "${name}" deleted.`;
        }, {danger: true, confirm: `Delete the exchange "${name}" and its bindings?`})));
  }

  ctx.every(async () => {
    try {
      x = await get(path);
    } catch (err) {
      if (err.status === 404) {
        fill(main, problem(`There is no exchange "${name}" in virtual host "${vhost}" (any more).`));
        return false;
      }
      throw err;
    }
    const stats = x.message_stats || {};
    fill(details,
      fact('Virtual host', vhost), fact('Type', x.type), fact('Features', featureMarks(x)),
      fact('Arguments', tableView(x.arguments)), fact('Policy', x.policy || h('span', {class: 'muted'}, 'none')),
      fact('Rate in', rate(stats.publish_in_details && stats.publish_in_details.rate)),
      fact('Rate out', rate(stats.publish_out_details && stats.publish_out_details.rate)));
    main.dataset.updated = String(Date.now());
    return true;
  });
}
