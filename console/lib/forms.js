// console/lib/forms.js: forms, argument editors, confirmation dialogs and notices. Every write
// the console makes starts from a form here or a confirmed button; the API's answer (or its
// reason for refusing) is shown next to it.

import {h} from './dom.js';

let fieldCounter = 0;

// ---- arguments (AMQP tables) ---------------------------------------------------------------

const TYPES = ['string', 'number', 'boolean', 'json'];

// A value typed in the editor, as JSON for the API. Throws with a reason.
function convert(type, text, key) {
  if (type === 'string') return text;
  if (type === 'number') {
    if (text.trim() === '' || Number.isNaN(Number(text))) throw new Error(`${key}: "${text}" is not a number`);
    return Number(text);
  }
  if (type === 'boolean') {
    if (text !== 'true' && text !== 'false') throw new Error(`${key}: a boolean is true or false`);
    return text === 'true';
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`${key}: not JSON`);
  }
}

// Rows of key, value and type, one more empty row appearing as the last is used. hints:
// [{key, type, help}] offered as the key's suggestions (picking one sets its type).
// Returns {element, value() -> object (throws with a reason), clear()}.
export function argsEditor(hints = [], label = 'Arguments') {
  const listId = 'args-hints-' + (++fieldCounter);
  const rows = h('div', {class: 'args-rows'});
  const datalist = h('datalist', {id: listId}, hints.map((x) => h('option', {value: x.key}, x.help || '')));
  function addRow() {
    const key = h('input', {type: 'text', placeholder: 'key', list: listId, 'aria-label': label + ' key', class: 'arg-key'});
    const value = h('input', {type: 'text', placeholder: 'value', 'aria-label': label + ' value', class: 'arg-value'});
    const type = h('select', {'aria-label': label + ' type', class: 'arg-type'}, TYPES.map((t) => h('option', {value: t}, t)));
    key.addEventListener('input', () => {
      const hint = hints.find((x) => x.key === key.value);
      if (hint && hint.type) type.value = hint.type;
      if (rows.lastElementChild === row && key.value) addRow();
    });
    const row = h('div', {class: 'args-row'}, key, ' = ', value, type);
    rows.append(row);
  }
  addRow();
  const buttons = hints.length
    ? h('div', {class: 'hints'}, 'Add: ', hints.map((x) => h('button', {type: 'button', class: 'link', title: x.help || '',
      onclick: () => {
        const last = rows.lastElementChild;
        const [key, , type] = last.querySelectorAll('input, select');
        key.value = x.key;
        type.value = x.type || 'string';
        addRow();
        last.querySelector('.arg-value').focus();
      }}, x.key)))
    : null;
  return {
    element: h('div', {class: 'args'}, rows, datalist, buttons),
    value() {
      const out = {};
      for (const row of rows.children) {
        const [key, value, type] = row.querySelectorAll('input, select');
        if (!key.value) continue;
        out[key.value] = convert(type.value, value.value, key.value);
      }
      return out;
    },
    clear() {
      rows.replaceChildren();
      addRow();
    },
  };
}

// ---- forms ---------------------------------------------------------------------------------

// A form. fields: [{name, label, type: text|password|number|select|checkbox|textarea|args|
// file, options: [[value, label]] or [value], value, required, placeholder, help, hints
// (args), list (suggestions)}]. onSubmit(values) may return a promise and a success text.
// Returns the <form>; form.fields[name] are the inputs (or editors).
export function form({title, fields, submitLabel = 'Save', onSubmit, cls, reset = true}) {
  const inputs = {};
  const status = h('p', {class: 'form-status', role: 'status'});
  const button = h('button', {type: 'submit', class: 'primary'}, submitLabel);
  const rows = fields.map((f) => {
    const id = 'f' + (++fieldCounter);
    let input;
    if (f.type === 'args') {
      input = argsEditor(f.hints, f.label);
      inputs[f.name] = input;
      return h('div', {class: 'field wide'}, h('span', {class: 'label'}, f.label), input.element,
        f.help && h('small', {class: 'help'}, f.help));
    }
    if (f.type === 'select') {
      input = h('select', {id, name: f.name}, (f.options || []).map((o) => {
        const [value, text] = Array.isArray(o) ? o : [o, o];
        return h('option', {value, selected: String(value) === String(f.value)}, text);
      }));
    } else if (f.type === 'textarea') {
      input = h('textarea', {id, name: f.name, rows: f.rows || 4, placeholder: f.placeholder, required: f.required});
      input.value = f.value || '';
    } else if (f.type === 'checkbox') {
      input = h('input', {id, name: f.name, type: 'checkbox', checked: Boolean(f.value)});
    } else {
      input = h('input', {id, name: f.name, type: f.type || 'text', placeholder: f.placeholder, required: f.required,
        autocomplete: f.autocomplete || 'off', list: f.list, min: f.min});
      if (f.value !== undefined) input.value = f.value;
    }
    inputs[f.name] = input;
    return h('div', {class: ['field', f.type === 'textarea' && 'wide']},
      h('label', {for: id}, f.label), input, f.help && h('small', {class: 'help'}, f.help));
  });
  const el = h('form', {class: ['form', cls], novalidate: false},
    title && h('h3', null, title), h('div', {class: 'fields'}, rows), h('div', {class: 'actions'}, button, status));
  el.fields = inputs;
  el.addEventListener('submit', async (event) => {
    event.preventDefault();
    const values = {};
    try {
      for (const f of fields) {
        const input = inputs[f.name];
        if (f.type === 'args') values[f.name] = input.value();
        else if (f.type === 'checkbox') values[f.name] = input.checked;
        else if (f.type === 'file') values[f.name] = input.files[0];
        else values[f.name] = input.value;
      }
    } catch (err) {
      status.className = 'form-status error';
      status.textContent = err.message;
      return;
    }
    button.disabled = true;
    status.className = 'form-status';
    status.textContent = 'Working…';
    try {
      const done = await onSubmit(values);
      status.className = 'form-status ok';
      status.textContent = typeof done === 'string' ? done : 'Done.';
      if (reset && done !== false) {
        for (const f of fields) {
          if (f.type === 'args') inputs[f.name].clear();
          else if (f.keep || f.type === 'select' || f.type === 'checkbox') continue;
          else inputs[f.name].value = f.value || '';
        }
      }
    } catch (err) {
      status.className = 'form-status error';
      status.textContent = err.message;
    } finally {
      button.disabled = false;
    }
  });
  return el;
}

// A collapsible section holding a form or anything else (closed unless open).
export function section(title, content, open = false) {
  return h('details', {class: 'panel', open}, h('summary', null, title), content);
}

// ---- dialogs and notices -------------------------------------------------------------------

// A modal question. With reason: {label, value} it also asks for a text, resolved instead of
// true. Resolves false when cancelled.
export function confirmDialog(text, {confirmLabel = 'OK', danger = false, reason} = {}) {
  return new Promise((resolve) => {
    const input = reason ? h('input', {type: 'text', 'aria-label': reason.label, class: 'wide-input'}) : null;
    if (input) input.value = reason.value || '';
    const ok = h('button', {type: 'submit', class: danger ? 'danger' : 'primary', value: 'ok'}, confirmLabel);
    const cancel = h('button', {type: 'button', value: 'cancel'}, 'Cancel');
    const dialog = h('dialog', {class: 'confirm'},
      h('form', {method: 'dialog'}, h('p', null, text), input && h('label', null, reason.label, input),
        h('div', {class: 'actions'}, ok, cancel)));
    let answered = false;
    const finish = (value) => {
      if (answered) return;
      answered = true;
      dialog.close();
      dialog.remove();
      resolve(value);
    };
    dialog.querySelector('form').addEventListener('submit', (e) => {
      e.preventDefault();
      finish(input ? input.value : true);
    });
    cancel.addEventListener('click', () => finish(false));
    dialog.addEventListener('cancel', () => finish(false));
    document.body.append(dialog);
    dialog.showModal();
    (input || ok).focus();
  });
}

// A short notice in the corner ("Queue purged"); kind: 'ok' or 'error'.
export function notify(text, kind = 'ok') {
  const area = document.getElementById('notices');
  const note = h('div', {class: ['notice', kind], role: kind === 'error' ? 'alert' : 'status'}, text);
  area.append(note);
  setTimeout(() => note.remove(), kind === 'error' ? 8000 : 4000);
}

// A button that asks first (when confirm is given), runs action, and reports the outcome.
export function actionButton(label, action, {confirm, danger = false, done, cls} = {}) {
  const button = h('button', {type: 'button', class: [danger ? 'danger' : 'secondary', cls]}, label);
  button.addEventListener('click', async () => {
    if (confirm && !(await confirmDialog(confirm, {confirmLabel: label, danger}))) return;
    button.disabled = true;
    try {
      const text = await action();
      notify(typeof text === 'string' ? text : done || `${label}: done`);
    } catch (err) {
      notify(`${label}: ${err.message}`, 'error');
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

// A message box for a page that could not load ("not allowed", "not found").
export function problem(text) {
  return h('div', {class: 'problem', role: 'alert'}, text);
}

