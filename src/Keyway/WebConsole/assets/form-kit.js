// Building blocks of the console's forms (loaded after app.js, whose h, api, field and badge it uses):
// fields bound to a path in a plain object, key/value rows, per-field server errors, and the secret
// picker, which never takes a secret's value into a definition: it writes a template that names a
// secret variable, and a secret it creates goes straight to the variables API with its origin binding.
'use strict';

let formKitIds = 0;
const nextId = (prefix) => `${prefix}-${++formKitIds}`;

/** "auth.steps[0].url" → ['auth', 'steps', 0, 'url']. */
function pathParts(path) {
  return path.split(/\.|\[(\d+)\]/).filter((p) => p !== undefined && p !== '').map((p) => (/^\d+$/.test(p) ? Number(p) : p));
}

function getAt(obj, path) {
  return pathParts(path).reduce((o, k) => (o === null || o === undefined ? undefined : o[k]), obj);
}

/** Sets a value at a path, creating objects on the way; undefined or '' removes it (and empty parents). */
function setAt(obj, path, value) {
  const parts = pathParts(path);
  const chain = [obj];
  let o = obj;
  for (const k of parts.slice(0, -1)) {
    if (o[k] === null || typeof o[k] !== 'object') o[k] = typeof k === 'number' ? [] : {};
    o = o[k];
    chain.push(o);
  }
  const last = parts[parts.length - 1];
  if (value === undefined || value === '' || (Array.isArray(value) && value.length === 0 && typeof last !== 'number')) {
    if (Array.isArray(o)) o[last] = undefined; else delete o[last];
    for (let i = chain.length - 1; i > 0; i--) {
      const c = chain[i];
      // An emptied object goes, up to (not including) an item of a list, whose place others count on.
      if (!Array.isArray(c) && !Array.isArray(chain[i - 1]) && Object.keys(c).length === 0) delete chain[i - 1][parts[i - 1]];
      else break;
    }
  } else {
    o[last] = value;
  }
}

/**
 * Per-field errors from the server (problem+json `errors`: [{field, message}]), shown next to the
 * field they name, or next to the nearest enclosing one ("auth.steps[1].headers.X" → the step's headers).
 */
class FieldErrors {
  constructor() { this.map = new Map(); }

  set(errors) { this.map = new Map((errors || []).map((e) => [e.field, e.message])); }

  clear() { this.map.clear(); }

  /** The errors a field at `path` shows: its own, and any under it that no narrower field on the page shows. */
  for(path, shown) {
    const out = [];
    for (const [field, message] of this.map) {
      if (field === path || field.startsWith(path + '.') || field.startsWith(path + '[')) {
        if (field === path || !(shown && shown(field))) out.push(field === path ? message : `${field}: ${message}`);
      }
    }
    return out;
  }
}

/**
 * A labelled control bound to `path` in `model`. kind: text (default), number, textarea, select
 * (options: [[value, label]]), check (boolean), list (comma-separated), numbers (comma-separated integers).
 */
function bound(model, path, label, options = {}) {
  const { kind = 'text', hint, placeholder, choices, errors, required, mono, rows, onchange, invert } = options;
  const id = nextId('f');
  const current = getAt(model, path);
  let control;
  const write = (value) => { setAt(model, path, value); if (onchange) onchange(value); };
  if (kind === 'select') {
    control = h('select', { id, name: path }, choices.map(([v, text]) => h('option', { value: v, selected: String(current ?? '') === v }, text)));
    control.addEventListener('change', () => write(control.value || undefined));
  } else if (kind === 'check') {
    control = h('input', { id, name: path, type: 'checkbox', checked: invert ? current === false : current === true });
    control.addEventListener('change', () => write(invert ? (control.checked ? false : undefined) : (control.checked ? true : undefined)));
  } else if (kind === 'textarea') {
    control = h('textarea', { id, name: path, rows: rows || 4, spellcheck: 'false', placeholder }, current ?? '');
    control.addEventListener('input', () => write(control.value));
  } else {
    const text = kind === 'list' || kind === 'numbers' ? (current || []).join(', ') : current ?? '';
    control = h('input', { id, name: path, type: kind === 'number' ? 'number' : 'text', value: String(text), placeholder, required, class: mono ? 'mono' : null, spellcheck: 'false' });
    control.addEventListener('input', () => {
      const v = control.value.trim();
      if (kind === 'number') write(v === '' ? undefined : Number(v));
      else if (kind === 'list') write(v ? v.split(',').map((s) => s.trim()).filter(Boolean) : undefined);
      else if (kind === 'numbers') write(v ? v.split(',').map((s) => s.trim()).filter(Boolean).map(Number) : undefined);
      else write(control.value === '' ? undefined : control.value);
    });
  }
  return wrapField(id, path, label, control, { hint, errors, check: kind === 'check' });
}

/** A label, the control, its hint and its errors, tied together for assistive technology. */
function wrapField(id, path, label, control, { hint, errors, check, shown } = {}) {
  const messages = errors ? errors.for(path, shown) : [];
  const described = [];
  const hintEl = hint ? h('span', { class: 'hint', id: id + '-hint' }, hint) : null;
  if (hintEl) described.push(hintEl.id);
  const errorEl = messages.length ? h('span', { class: 'field-error', id: id + '-error' }, messages.join(' ')) : null;
  if (errorEl) {
    described.push(errorEl.id);
    control.setAttribute('aria-invalid', 'true');
  }
  if (described.length) control.setAttribute('aria-describedby', described.join(' '));
  const wrapper = check
    ? h('div', { class: 'field', 'data-field': path }, h('label', { class: 'check', for: id }, control, label), hintEl, errorEl)
    : h('div', { class: 'field', 'data-field': path }, h('label', { for: id }, label), control, hintEl, errorEl);
  return wrapper;
}

/** Rows of name/value pairs bound to the object at `path` (headers, query parameters, cookies, extra parameters). */
function pairRows(model, path, label, { keyLabel = 'Name', valueLabel = 'Value', errors, hint, keyPlaceholder, valuePlaceholder, addLabel } = {}) {
  const rows = Object.entries(getAt(model, path) || {});
  const holder = h('div', { class: 'pairs' });
  const write = () => {
    const obj = {};
    for (const [k, v] of rows) if (k.trim()) obj[k.trim()] = v;
    setAt(model, path, Object.keys(obj).length ? obj : undefined);
  };
  const draw = (focusLast) => {
    holder.replaceChildren(...rows.map((row, i) => {
      const key = h('input', { value: row[0], 'aria-label': `${label}: ${keyLabel.toLowerCase()} ${i + 1}`, class: 'mono', placeholder: keyPlaceholder, spellcheck: 'false' });
      const value = h('input', { value: row[1], 'aria-label': `${label}: ${valueLabel.toLowerCase()} ${i + 1}`, class: 'mono grow', placeholder: valuePlaceholder, spellcheck: 'false' });
      key.addEventListener('input', () => { row[0] = key.value; write(); });
      value.addEventListener('input', () => { row[1] = value.value; write(); });
      const messages = errors ? errors.for(`${path}.${row[0]}`) : [];
      return h('div', { class: 'pair', 'data-field': `${path}.${row[0]}` },
        h('div', { class: 'row' }, key, value,
          h('button', { type: 'button', class: 'secondary small', 'aria-label': `Remove ${label.toLowerCase()} row ${i + 1}`, onclick: () => { rows.splice(i, 1); write(); draw(); } }, 'Remove')),
        messages.length ? h('span', { class: 'field-error' }, messages.join(' ')) : null);
    }), h('button', { type: 'button', class: 'secondary small', onclick: () => { rows.push(['', '']); draw(true); } }, addLabel || `Add ${label.toLowerCase().replace(/s$/, '')}`));
    if (focusLast) holder.querySelectorAll('.pair input')[rows.length * 2 - 2].focus();
  };
  draw();
  const own = errors ? errors.for(path, (f) => rows.some(([k]) => f === `${path}.${k}` || f.startsWith(`${path}.${k}.`))) : [];
  return h('fieldset', { class: 'group', 'data-field': path }, h('legend', {}, label), hint ? h('p', { class: 'hint' }, hint) : null,
    own.length ? h('p', { class: 'field-error' }, own.join(' ')) : null, holder);
}

// ---- Secrets ------------------------------------------------------------------------------
const secretTemplate = /^\{\{\s*environment\.variables\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}$/;

/** The secret variables a person may pick: their names in every environment (admins), or null (members cannot list them). */
async function secretCatalog() {
  try {
    const names = new Map();
    for (const env of state.environments) {
      const { variables } = await api('GET', `/environments/${encodeURIComponent(env)}/variables`);
      for (const v of variables.filter((x) => x.secret)) names.set(v.name, [...(names.get(v.name) || []), env]);
    }
    return names;
  } catch (error) {
    if (error instanceof ApiError && error.status === 403) return null;
    throw error;
  }
}

function originOf(url) {
  if (!url || url.includes('{{')) return '';
  try { return new URL(url).origin; } catch { return ''; }
}

/**
 * A secret field: pick a secret variable (the definition gets {{ environment.variables.NAME }}), write
 * another template, or create a secret here, bound to `origin()` unless changed. The value typed to
 * create one goes to PUT /environments/{env}/variables/{name} and is cleared; it never enters the model.
 */
function secretPicker(model, path, label, { catalog, errors, origin, hint } = {}) {
  const id = nextId('s');
  const current = getAt(model, path);
  const match = typeof current === 'string' ? secretTemplate.exec(current) : null;
  const known = catalog ? [...catalog.keys()].sort() : [];
  const mode = !current ? '' : match && (!catalog || known.includes(match[1])) ? 'pick' : 'template';
  const wrapper = h('div', { class: 'field secret', 'data-field': path });
  const messages = errors ? errors.for(path) : [];
  const errorEl = messages.length ? h('span', { class: 'field-error', id: id + '-error' }, messages.join(' ')) : null;

  const select = h('select', { id, name: path, 'aria-describedby': errorEl ? errorEl.id : null, 'aria-invalid': errorEl ? 'true' : null },
    h('option', { value: '' }, '— choose a secret —'),
    catalog ? known.map((n) => h('option', { value: 'var:' + n, selected: match && match[1] === n }, `${n} (${catalog.get(n).join(', ')})`)) : null,
    !catalog ? h('option', { value: 'name', selected: mode === 'pick' }, 'A secret variable, by name') : null,
    h('option', { value: 'template', selected: mode === 'template' }, 'A template (advanced)'),
    catalog ? h('option', { value: 'new' }, 'New secret…') : null);
  const nameInput = h('input', { 'aria-label': `${label}: secret variable name`, class: 'mono', value: match ? match[1] : '', placeholder: 'GITHUB_TOKEN', spellcheck: 'false' });
  nameInput.addEventListener('input', () => setAt(model, path, nameInput.value.trim() ? `{{ environment.variables.${nameInput.value.trim()} }}` : undefined));
  const templateInput = h('input', { 'aria-label': `${label}: template`, class: 'mono grow', value: mode === 'template' ? current : '', placeholder: 'Token {{ environment.variables.NAME }}', spellcheck: 'false' });
  templateInput.addEventListener('input', () => setAt(model, path, templateInput.value || undefined));

  const created = h('p', { class: 'hint', role: 'status' });
  const newName = h('input', { 'aria-label': `${label}: new secret's name`, class: 'mono', placeholder: 'NAME', spellcheck: 'false' });
  const newValue = h('input', { 'aria-label': `${label}: new secret's value`, type: 'password', autocomplete: 'off' });
  const newEnv = h('select', { 'aria-label': `${label}: new secret's environment` }, state.environments.map((e) => h('option', { selected: e === 'production' }, e)));
  const newOrigins = h('input', { 'aria-label': `${label}: origins the new secret may be sent to`, class: 'mono grow', placeholder: 'https://api.example.com' });
  const create = h('button', {
    type: 'button', class: 'secondary', onclick: (e) => act(e.currentTarget, async () => {
      const name = newName.value.trim();
      if (!name || !newValue.value) { notice('Name the secret and type its value.', 'bad'); return; }
      const origins = newOrigins.value.split(',').map((s) => s.trim()).filter(Boolean);
      try {
        await api('PUT', `/environments/${encodeURIComponent(newEnv.value)}/variables/${encodeURIComponent(name)}`, { value: newValue.value, secret: true, origins });
      } finally {
        // The value went with the request; it is not kept in the page.
        newValue.value = '';
      }
      catalog.set(name, [...new Set([...(catalog.get(name) || []), newEnv.value])]);
      setAt(model, path, `{{ environment.variables.${name} }}`);
      select.prepend(h('option', { value: 'var:' + name }, `${name} (${catalog.get(name).join(', ')})`));
      select.value = 'var:' + name;
      sync();
      created.textContent = `Secret ${name} stored in ${newEnv.value}${origins.length ? `, sent only to ${origins.join(', ')}` : ''}. Set it in other environments on the Variables page.`;
    }),
  }, 'Create secret');
  const enter = (e) => { if (e.key === 'Enter') { e.preventDefault(); create.click(); } };
  for (const input of [newName, newValue, newOrigins]) input.addEventListener('keydown', enter);
  const newPanel = h('div', { class: 'new-secret' },
    h('p', { class: 'hint' }, 'Stored encrypted in the environment you choose and never shown again; the resource only names it.'),
    h('div', { class: 'row' }, newName, newValue, newEnv), h('div', { class: 'row' }, h('span', { class: 'hint' }, 'Send only to'), newOrigins, create));

  function sync() {
    const v = select.value;
    nameInput.hidden = v !== 'name';
    templateInput.hidden = v !== 'template';
    newPanel.hidden = v !== 'new';
    if (v === 'new') {
      if (!newOrigins.value && origin) newOrigins.value = origin();
      newName.focus();
    }
  }
  select.addEventListener('change', () => {
    const v = select.value;
    if (v.startsWith('var:')) setAt(model, path, `{{ environment.variables.${v.slice(4)} }}`);
    else if (v === '') setAt(model, path, undefined);
    else if (v === 'name') nameInput.dispatchEvent(new Event('input'));
    else if (v === 'template') setAt(model, path, templateInput.value || undefined);
    sync();
  });
  if (!catalog && mode === 'pick') select.value = 'name';
  sync();
  const note = hint || !catalog ? h('span', { class: 'hint' }, hint || '', !catalog ? ' Only admins list and create secrets; ask one to set it (keyway var set NAME --secret).' : '') : null;
  // append() would draw a null as the text "null".
  wrapper.append(...[h('label', { for: id }, label), h('div', { class: 'row' }, select, nameInput, templateInput), newPanel, created, note, errorEl].filter(Boolean));
  return wrapper;
}

/** A value with a Copy button, for what a person pastes elsewhere (a callback URL). */
function copyable(label, value, id) {
  const code = h('code', { id }, value);
  return h('div', { class: 'field' }, h('span', { class: 'label' }, label),
    h('div', { class: 'row' }, code, h('button', {
      type: 'button', class: 'secondary small', 'aria-label': `Copy ${label.toLowerCase()}`, onclick: async () => {
        try { await navigator.clipboard.writeText(value); notice('Copied.', 'ok'); } catch { notice('Select the text and copy it.', 'bad'); }
      },
    }, 'Copy')));
}
