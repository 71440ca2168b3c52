// console/lib/table.js: a table over one of the API's paged lists. Sorting, filtering and
// paging happen in the broker (RabbitMQ's ?page, page_size, name, use_regex, sort,
// sort_reverse, columns), so the page holds one page of rows whatever the number of queues;
// the browser only draws what it is given. The wrapper's data-state ("loading", "ready",
// "error") tells tests and benchmarks when a draw is done.

import {h, fill, num} from './dom.js';

const PAGE_SIZES = [20, 50, 100, 500];

function loadState(id, defaults) {
  try {
    return {...defaults, ...JSON.parse(sessionStorage.getItem('warren.table.' + id) || '{}')};
  } catch {
    return {...defaults};
  }
}

// columns: [{key, label, sort: API sort key (omit: not sortable), descending: first click
// sorts high to low, render(item) -> node or text, cls}]. load(params) returns the API's
// paged answer {items, filtered_count, total_count, page, page_count}. Returns {element,
// refresh(), destroy()}; the caller runs refresh() (once, or every few seconds).
export function pagedTable({id, columns, load, defaultSort = {sort: 'name', reverse: false}, empty = 'Nothing here.'}) {
  const state = loadState(id, {page: 1, pageSize: 100, name: '', regex: false, ...defaultSort});
  const save = () => sessionStorage.setItem('warren.table.' + id, JSON.stringify(state));
  let sequence = 0;
  let timer = null;
  let destroyed = false;

  const filter = h('input', {type: 'search', placeholder: 'Filter by name', value: state.name,
    'aria-label': 'Filter by name', class: 'filter'});
  const regex = h('input', {type: 'checkbox', checked: state.regex});
  const size = h('select', {'aria-label': 'Rows per page'},
    PAGE_SIZES.map((n) => h('option', {value: n, selected: n === state.pageSize}, `${n} per page`)));
  const counter = h('span', {class: 'count muted'});
  const message = h('span', {class: 'table-error', role: 'alert'});
  const head = h('tr');
  const body = h('tbody');
  const pager = h('nav', {class: 'pager', 'aria-label': 'Pages'});
  const element = h('div', {class: 'table-block', dataset: {table: id, state: 'loading'}},
    h('div', {class: 'table-tools'}, filter, h('label', {class: 'inline'}, regex, ' Regex'), size, counter, message),
    h('div', {class: 'table-scroll'}, h('table', {class: 'list'}, h('thead', null, head), body)),
    pager);

  function drawHead() {
    fill(head, columns.map((c) => {
      if (!c.sort) return h('th', {class: c.cls}, c.label);
      const active = state.sort === c.sort;
      const arrow = active ? (state.reverse ? ' ▼' : ' ▲') : '';
      return h('th', {class: [c.cls, active && 'sorted'], 'aria-sort': active ? (state.reverse ? 'descending' : 'ascending') : 'none'},
        h('button', {type: 'button', class: 'sort', dataset: {sort: c.sort}, onclick: () => sortBy(c)}, c.label + arrow));
    }));
  }

  function drawRows(answer) {
    const rows = answer.items.map((item) => h('tr', null, columns.map((c) => h('td', {class: c.cls}, c.render(item)))));
    if (!rows.length) rows.push(h('tr', null, h('td', {colspan: columns.length, class: 'muted'}, empty)));
    fill(body, rows);
    const filtered = answer.filtered_count !== answer.total_count;
    fill(counter, filtered ? `${num(answer.filtered_count)} of ${num(answer.total_count)}` : `${num(answer.total_count)} in all`);
    const last = Math.max(1, answer.page_count);
    const go = (page) => () => { state.page = page; save(); refresh(); };
    fill(pager,
      h('button', {type: 'button', disabled: state.page <= 1, onclick: go(1), 'aria-label': 'First page'}, '«'),
      h('button', {type: 'button', disabled: state.page <= 1, onclick: go(state.page - 1), 'aria-label': 'Previous page'}, '‹'),
      h('span', {class: 'page'}, `Page ${num(state.page)} of ${num(last)}`),
      h('button', {type: 'button', disabled: state.page >= last, onclick: go(state.page + 1), 'aria-label': 'Next page'}, '›'),
      h('button', {type: 'button', disabled: state.page >= last, onclick: go(last), 'aria-label': 'Last page'}, '»'));
  }

  async function refresh() {
    const mine = ++sequence;
    element.dataset.state = 'loading';
    try {
      const answer = await load({
        page: state.page,
        page_size: state.pageSize,
        name: state.name || undefined,
        use_regex: state.regex && state.name ? 'true' : undefined,
        sort: state.sort,
        sort_reverse: state.reverse ? 'true' : undefined,
      });
      if (mine !== sequence || destroyed) return;
      // Fewer rows than before (deleted, filtered): the API refuses a page past the last one.
      if (answer.page_count > 0 && state.page > answer.page_count) {
        state.page = answer.page_count;
        save();
        refresh();
        return;
      }
      message.textContent = '';
      drawHead();
      drawRows(answer);
      element.dataset.state = 'ready';
    } catch (err) {
      if (mine !== sequence || destroyed) return;
      if (err.status === 400 && /page out of range/.test(err.message) && state.page !== 1) {
        state.page = 1;
        save();
        refresh();
        return;
      }
      message.textContent = err.message;
      element.dataset.state = 'error';
    }
  }

  function sortBy(column) {
    if (state.sort === column.sort) state.reverse = !state.reverse;
    else Object.assign(state, {sort: column.sort, reverse: Boolean(column.descending)});
    state.page = 1;
    save();
    refresh();
  }

  filter.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(() => { state.name = filter.value; state.page = 1; save(); refresh(); }, 300);
  });
  regex.addEventListener('change', () => { state.regex = regex.checked; state.page = 1; save(); refresh(); });
  size.addEventListener('change', () => { state.pageSize = Number(size.value); state.page = 1; save(); refresh(); });

  drawHead();
  return {element, refresh, destroy() { destroyed = true; clearTimeout(timer); }};
}
