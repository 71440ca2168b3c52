// console/pages/definitions.js: the Admin tab that downloads the broker's definitions
// (GET /api/definitions, RabbitMQ's format) and uploads a file to import (POST), for the whole
// broker or one virtual host, reporting what Warren does not support (docs/management.md).

import {apiPath, get, post} from '../lib/api.js';
import {h, fill} from '../lib/dom.js';
import {form} from '../lib/forms.js';

function vhostChoice(ctx) {
  return [['', 'All virtual hosts'], ...ctx.vhosts.map((v) => [v, v])];
}

export async function definitionsTab(body, ctx) {
  const report = h('div', {class: 'report'});
  const download = form({
    title: 'Download definitions',
    fields: [{name: 'vhost', label: 'Virtual host', type: 'select', options: vhostChoice(ctx), value: ''}],
    submitLabel: 'Download',
    reset: false,
    async onSubmit(v) {
      const defs = await get(v.vhost ? apiPath('definitions', v.vhost) : apiPath('definitions'));
      const blob = new Blob([JSON.stringify(defs, null, 2) + '\n'], {type: 'application/json'});
      const url = URL.createObjectURL(blob);
      const stamp = new Date().toISOString().slice(0, 10);
      const a = h('a', {href: url, download: `warren-definitions${v.vhost ? '-' + v.vhost.replace(/[^\w.-]/g, '_') : ''}-${stamp}.json`});
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      const count = (k) => (defs[k] || []).length;
      return `Downloaded: ${count('queues')} queues, ${count('exchanges')} exchanges, ${count('bindings')} bindings` +
        (v.vhost ? '.' : `, ${count('users')} users, ${count('vhosts')} virtual hosts.`);
    },
  });
  const upload = form({
    title: 'Import definitions',
    fields: [
      {name: 'file', label: 'Definitions file (JSON)', type: 'file'},
      {name: 'vhost', label: 'Into virtual host', type: 'select', options: vhostChoice(ctx), value: ''},
      {name: 'skip', label: 'Import what Warren supports, report the rest', type: 'checkbox'},
    ],
    submitLabel: 'Upload and import',
    reset: false,
    async onSubmit(v) {
      if (!v.file) throw new Error('Choose a file first.');
      const text = await v.file.text();
      const path = (v.vhost ? apiPath('definitions', v.vhost) : apiPath('definitions')) + (v.skip ? '?skip-unsupported=true' : '');
      fill(report);
      try {
        const answer = await post(path, text);
        showUnsupported(report, answer && answer.unsupported);
        ctx.reloadVhosts();
        return answer && answer.unsupported && answer.unsupported.length
          ? 'Imported, except what is listed below.' : 'Imported.';
      } catch (err) {
        if (err.body && err.body.unsupported) {
          showUnsupported(report, err.body.unsupported);
          throw new Error('Nothing was imported: Warren does not support what is listed below. ' +
            'Tick the box to import the rest.');
        }
        throw err;
      }
    },
  });
  upload.fields.file.accept = 'application/json,.json';
  fill(body, h('section', {class: 'panel-box'}, download), h('section', {class: 'panel-box'}, upload, report));
}

function showUnsupported(report, items) {
  if (!items || !items.length) return;
  fill(report, h('div', {class: 'table-scroll'}, h('table', {class: 'list'},
    h('thead', null, h('tr', null, h('th', null, 'Category'), h('th', null, 'Item'), h('th', null, 'Why'))),
    h('tbody', null, items.map((u) => h('tr', null, h('td', null, u.category),
      h('td', null, typeof u.item === 'string' ? u.item : JSON.stringify(u.item)), h('td', null, u.reason)))))));
}
