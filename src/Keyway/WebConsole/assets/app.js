// Keyway's web console. Everything it shows comes from /api/v1 with the session cookie, so it can
// show nothing the API would not: secrets are never returned, and known secret values in upstream
// answers are redacted by the server before they get here. The page builds every element with
// textContent, never innerHTML, so a value can never become markup.
'use strict';

const state = { me: null, csrf: null, environments: [], sso: false };

// ---- DOM ----------------------------------------------------------------------------------
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const $ = (id) => document.getElementById(id);
const main = () => $('main');

function show(...nodes) {
  main().replaceChildren(...nodes.flat().filter((n) => n !== null && n !== undefined));
  main().focus({ preventScroll: true });
}

let noticeTimer;
function notice(text, kind) {
  const box = $('notice');
  box.className = kind || '';
  box.replaceChildren(text);
  box.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { box.hidden = true; }, kind === 'bad' ? 9000 : 4000);
}

function when(value) {
  if (!value) return '—';
  const d = new Date(value);
  return isNaN(d) ? String(value) : d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}

function badge(text, kind) { return h('span', { class: 'badge ' + (kind || '') }, text); }

// The state of a revoke at the provider, as a pill: revoked, pending, gave up (revoke by hand), not revoked.
function revokeBadge(status) {
  const [text, kind] = {
    revoked: ['revoked', 'ok'],
    pending: ['revoke pending', 'warn'],
    failed: ['gave up — revoke by hand', 'bad'],
    skipped: ['not revoked', 'bad'],
    live: ['live at the provider', 'warn'],
  }[status] || [status, ''];
  return badge(text, kind);
}

function table(columns, rows, empty) {
  if (rows.length === 0) return h('p', { class: 'muted' }, empty);
  return h('table', {},
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', {}, c)))),
    h('tbody', {}, rows.map((cells) => h('tr', {}, cells.map((c) => c instanceof Node && c.tagName === 'TD' ? c : h('td', {}, c))))));
}

function field(label, input) { return h('label', {}, label, input); }

function withoutNulls(value) {
  if (Array.isArray(value)) return value.map(withoutNulls);
  if (value && typeof value === 'object') {
    const out = {};
    for (const [k, v] of Object.entries(value)) if (v !== null && v !== undefined) out[k] = withoutNulls(v);
    return out;
  }
  return value;
}

function pretty(value) { return typeof value === 'string' ? value : JSON.stringify(value, null, 2); }

function list(text) { return text.split(',').map((s) => s.trim()).filter(Boolean); }

/** Parses what a person typed, or fails with <what>'s message and the parser's reason. */
function parseJson(text, what) {
  try { return JSON.parse(text); } catch (e) { throw new Error(`${what}: ${e.message}`); }
}

// ---- API ----------------------------------------------------------------------------------
class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `The server answered ${status}.`);
    this.status = status;
    this.code = (problem && problem.code) || 'http_' + status;
    this.problem = problem || {};
  }
}

function csrfToken() {
  if (state.csrf) return state.csrf;
  const match = document.cookie.match(/(?:^|; )keyway-csrf=([^;]*)/);
  return match ? decodeURIComponent(match[1]) : null;
}

async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD') {
    const token = csrfToken();
    if (token) headers['X-Keyway-CSRF'] = token;
  }
  let response;
  try {
    response = await fetch('/api/v1' + path, {
      method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, { detail: 'Keyway did not answer. Is the server running, and is this the right address?', code: 'network' });
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = { detail: text }; }
  }
  if (!response.ok) {
    const error = new ApiError(response.status, data);
    if (response.status === 401 && path !== '/auth/login' && path !== '/me/password') {
      state.me = null;
      renderSignIn('Your session has ended. Sign in again.');
    }
    throw error;
  }
  return data;
}

/** The problem as a person reads it: the detail, each field error, and the stable code. */
function describe(error) {
  if (!(error instanceof ApiError)) return String(error && error.message || error);
  const parts = [error.message];
  // Keyway's per-field errors, [{field, message}], are in the detail already; ASP.NET Core's validation
  // problems carry {name: [messages]} instead.
  const errors = error.problem.errors;
  if (errors && typeof errors === 'object' && !Array.isArray(errors)) {
    for (const [name, messages] of Object.entries(errors)) parts.push(`${name}: ${[].concat(messages).join(' ')}`);
  }
  return parts.join(' ') + (error.code && error.status ? ` (${error.status} ${error.code})` : '');
}

function errorBox(error) { return h('p', { class: 'error', role: 'alert' }, describe(error)); }

/** A run's answer (an ad-hoc request's or a saved query's): the upstream's status, time, headers and body, redacted by the server. */
function answerView(answer) {
  const kind = answer.status < 300 ? 'ok' : answer.status < 500 ? 'warn' : 'bad';
  return [
    h('p', { class: 'row' }, badge(String(answer.status), kind), `${answer.durationMs} ms`, answer.refreshed ? badge('credential refreshed', 'warn') : null),
    h('details', {}, h('summary', {}, 'Headers'), h('pre', {}, pretty(answer.headers || {}))),
    h('pre', { class: 'body' }, answer.body === null || answer.body === undefined ? '(no body)' : pretty(answer.body)),
    outboundView(answer.outbound),
  ];
}

/** A value shown once (a new API key, a generated password), at the top of the page until dismissed. */
function shownOnce({ title, text, value, done, id, copy }) {
  $('main').prepend(h('div', { class: 'card once', id, role: 'alert' }, h('h2', {}, title), h('p', {}, text), h('code', {}, value),
    h('div', { class: 'row' },
      copy ? h('button', { type: 'button', class: 'secondary', onclick: async () => { await navigator.clipboard.writeText(value); notice('Copied.', 'ok'); } }, 'Copy') : null,
      h('button', { type: 'button', class: 'link', onclick: (e) => e.currentTarget.closest('.once').remove() }, done))));
}

/** Runs an action from a form or button: disables it while it runs, and reports a failure. */
async function act(button, action) {
  if (button) button.disabled = true;
  try {
    return await action();
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) notice(describe(error), 'bad');
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

function onSubmit(handler) {
  return (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    act(form.querySelector('button[type=submit]'), () => handler(form));
  };
}

const isAdmin = () => state.me && state.me.role === 'admin';

async function loadEnvironments() {
  state.environments = (await api('GET', '/environments/')).environments.map((e) => e.name);
  return state.environments;
}

function environmentSelect(selected, onchange) {
  return h('select', { name: 'environment', onchange, 'aria-label': 'Environment' },
    state.environments.map((name) => h('option', { value: name, selected: name === selected }, name)));
}

// ---- Sign-in ------------------------------------------------------------------------------
function renderSignIn(message) {
  $('bar').hidden = true;
  const error = h('p', { class: 'error', role: 'alert', id: 'signin-error' }, message && !message.startsWith('Your') ? message : '');
  const hint = message && message.startsWith('Your') ? h('p', { class: 'muted' }, message) : null;
  show(h('div', { class: 'card narrow' },
    h('h1', {}, 'Sign in to Keyway'),
    hint,
    h('form', {
      class: 'stack', id: 'signin', onsubmit: onSubmit(async (form) => {
        error.textContent = '';
        try {
          const result = await api('POST', '/auth/login', { name: form.elements.name.value, password: form.elements.password.value });
          state.csrf = result.csrfToken;
          state.me = result.user;
          form.elements.password.value = '';
          start();
        } catch (e) {
          form.elements.password.value = '';
          error.textContent = describe(e);
        }
      }),
    },
      field('User name', h('input', { name: 'name', autocomplete: 'username', required: true, autofocus: true })),
      field('Password', h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true })),
      error,
      h('button', { type: 'submit' }, 'Sign in')),
    state.sso ? h('p', {}, h('a', { href: '/auth/oidc/login?returnUrl=' + encodeURIComponent('/console' + location.hash), id: 'sso' }, 'Sign in with single sign-on')) : null));
  const name = main().querySelector('input[name=name]');
  if (name) name.focus();
}

async function signOut() {
  await act($('signout'), async () => {
    await api('POST', '/auth/logout');
    state.me = null;
    state.csrf = null;
    location.hash = '';
    renderSignIn();
  });
}

// ---- Shell --------------------------------------------------------------------------------
const sections = [
  // renderAttention is in attention.js, loaded after this file: the home page.
  { path: 'attention', title: 'Attention', render: (...args) => renderAttention(...args) },
  { path: 'resources', title: 'Resources', render: renderResources },
  { path: 'queries', title: 'Queries', render: renderQueries },
  // renderSchedules is in schedules.js, loaded after this file.
  { path: 'schedules', title: 'Schedules', render: (...args) => renderSchedules(...args) },
  { path: 'variables', title: 'Variables', render: renderVariables, admin: true },
  { path: 'keys', title: 'API keys', render: renderKeys },
  { path: 'audit', title: 'Audit log', render: renderAudit, admin: true },
  { path: 'webhooks', title: 'Webhooks', render: renderWebhooks, admin: true },
  { path: 'users', title: 'Users & groups', render: renderUsers, admin: true },
  { path: 'account', title: 'Account', render: renderAccount, hidden: true },
];

function renderBar(current) {
  $('bar').hidden = false;
  $('nav').replaceChildren(...sections.filter((s) => !s.hidden && (!s.admin || isAdmin()))
    .map((s) => h('a', { href: '#/' + s.path, class: s.path === current ? 'active' : '', 'aria-current': s.path === current ? 'page' : null }, s.title)));
  $('who').replaceChildren(state.me.displayName || state.me.name, ' ', badge(state.me.role));
}

async function route() {
  if (!state.me) return;
  const [path, ...rest] = location.hash.replace(/^#\/?/, '').split('?')[0].split('/').map(decodeURIComponent);
  const section = sections.find((s) => s.path === path && (!s.admin || isAdmin()));
  if (!section) {
    location.replace('#/attention');
    return;
  }
  renderBar(section.path);
  show(h('p', { class: 'muted' }, 'Loading…'));
  try {
    await section.render(...rest.filter(Boolean));
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) show(h('div', { class: 'card' }, errorBox(error)));
  }
}

async function start() {
  try {
    state.me = await api('GET', '/me');
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      renderSignIn();
      return;
    }
    show(h('div', { class: 'card narrow' }, h('h1', {}, 'Keyway'), errorBox(error)));
    return;
  }
  await loadEnvironments();
  if (!location.hash) location.replace('#/attention');
  await route();
}

// ---- Resources ----------------------------------------------------------------------------
const exampleResource = {
  kind: 'rest',
  headers: { Accept: 'application/json' },
  auth: { type: 'none' },
};

const dynamicAuth = new Set(['oauth2', 'custom']);

async function renderResources(name) {
  if (name) return renderResource(name);
  const [{ resources }, credentialState] = await Promise.all([api('GET', '/resources/'), credentialBadges()]);
  const filter = h('input', { type: 'search', class: 'filter', placeholder: 'Filter by name, URL or description', 'aria-label': 'Filter resources' });
  const rows = () => resources
    .filter((r) => !filter.value || [r.name, r.definition.baseUrl, r.definition.description].join(' ').toLowerCase().includes(filter.value.toLowerCase()))
    .map((r) => [h('a', { href: '#/resources/' + encodeURIComponent(r.name) }, r.name), r.definition.kind || 'rest',
      badge((r.definition.auth && r.definition.auth.type) || 'none'),
      dynamicAuth.has(r.definition.auth && r.definition.auth.type) ? credentialState(r.name) : h('span', { class: 'muted' }, 'static'),
      h('span', { class: 'mono' }, r.definition.baseUrl), r.definition.description || '', when(r.updatedAt)]);
  const holder = h('div', { id: 'resources' });
  const draw = () => holder.replaceChildren(table(['Name', 'Kind', 'Auth', 'Credential', 'Base URL', 'Description', 'Updated'], rows(),
    resources.length ? 'No resource matches the filter.' : 'No resources yet. Create the first one below, or from a file with `keyway resource apply FILE`.'));
  filter.addEventListener('input', draw);
  draw();
  show(
    h('div', { class: 'head' }, h('div', {}, h('h1', {}, 'Resources'), h('p', { class: 'muted' }, 'The APIs your tools call through Keyway, with the credentials Keyway attaches.')), filter),
    h('div', { class: 'card' }, holder),
    h('div', { class: 'card', id: 'new-resource' }, h('h2', {}, 'New resource'),
      h('p', { class: 'muted' }, 'Secrets stay on the server: a secret field names a secret variable. You will own what you create.'),
      // resourceForm is in resource-form.js, loaded after this file.
      resourceForm({
        name: null, definition: exampleResource, onSaved: (resourceName, saved) => {
          unbound.set(resourceName, saved.unboundSecrets || []);
          notice(`Resource ${resourceName} saved.`, 'ok');
          location.hash = '#/resources/' + encodeURIComponent(resourceName);
        },
      })));
}

// Secrets a resource sends that are bound to no origin, from the answer to its last save here.
const unbound = new Map();

// Offers to bind each secret the resource just saved sends, and is bound to no origin, to where it goes.
function unboundCard(name) {
  const items = unbound.get(name) || [];
  if (!items.length) return null;
  const vpath = (u) => `/environments/${encodeURIComponent(u.environment)}/variables/${encodeURIComponent(u.variable)}`;
  return h('div', { class: 'card', id: 'unbound' }, h('h2', {}, 'Secrets bound to no origin'),
    h('p', { class: 'muted' }, 'This resource sends these secrets. Bound to an origin, a secret goes nowhere else, whatever the resource says later.'),
    table(['Secret', 'Environment', 'Sent to', ''], items.map((u) => [
      h('span', { class: 'mono' }, u.variable), u.environment, h('span', { class: 'mono' }, u.origin || 'known at run time'),
      h('td', { class: 'actions' }, isAdmin() && u.origin
        ? h('button', {
          type: 'button', onclick: (e) => act(e.currentTarget, async () => {
            const current = await api('GET', vpath(u));
            await api('PUT', vpath(u) + '/origins', { origins: [...new Set([...(current.origins || []), u.origin])] });
            unbound.set(name, items.filter((x) => x !== u));
            notice(`${u.variable} (${u.environment}) is bound to ${u.origin}.`, 'ok');
            await renderResource(name);
          }),
        }, `Bind to ${u.origin}`)
        : h('span', { class: 'muted mono' }, `keyway var bind ${u.variable} ${u.origin || 'https://…'} --env ${u.environment}`))])));
}

async function renderResource(name) {
  const resource = await api('GET', '/resources/' + encodeURIComponent(name));
  const auth = (resource.definition.auth && resource.definition.auth.type) || 'none';
  const params = new URLSearchParams(location.hash.split('?')[1] || '');
  let environment = state.environments.includes(params.get('env')) ? params.get('env') : 'production';
  const path = '/resources/' + encodeURIComponent(name);

  const credential = h('div', {});
  async function drawCredential() {
    if (!dynamicAuth.has(auth)) {
      credential.replaceChildren(h('p', { class: 'muted' }, `Static auth (${auth}): Keyway attaches it from the resource's configuration; there is no token to refresh.`));
      return;
    }
    try {
      const c = await api('GET', `${path}/credential?environment=${encodeURIComponent(environment)}`);
      const kind = { valid: 'ok', expiring: 'warn', refreshing: 'warn', expired: 'bad', failed: 'bad', reconnect_required: 'bad' }[c.state];
      credential.replaceChildren(h('dl', { class: 'kv', id: 'credential' },
        h('dt', {}, 'State'), h('dd', {}, badge(c.state, kind)),
        h('dt', {}, 'Expires'), h('dd', {}, when(c.expiresAt)),
        h('dt', {}, 'Last refreshed'), h('dd', {}, when(c.lastRefreshedAt)),
        h('dt', {}, 'Next refresh'), h('dd', {}, when(c.nextRefreshAt)),
        h('dt', {}, 'Refreshes'), h('dd', {}, String(c.refreshCount ?? 0)),
        h('dt', {}, 'Failures'), h('dd', {}, String(c.failureCount ?? 0)),
        c.lastError ? [h('dt', {}, 'Last error'), h('dd', { class: 'error' }, c.lastError)] : null));
    } catch (error) {
      credential.replaceChildren(errorBox(error));
    }
  }

  // runRequestForm is in run-request.js, loaded after this file.
  const { form: runForm, result } = runRequestForm(path, () => environment);

  // The configuration as YAML (yamlStringify is in yaml.js); Edit opens the form in resource-form.js.
  const configuration = h('pre', { id: 'configuration' }, yamlStringify(withoutNulls(resource.definition)));
  const editor = h('div', { hidden: true }, resourceForm({
    name, definition: withoutNulls(resource.definition),
    onSaved: async (_, saved) => {
      unbound.set(name, saved.unboundSecrets || []);
      notice(`Resource ${name} saved.`, 'ok');
      await renderResource(name);
    },
    onCancel: () => { editor.hidden = true; configuration.hidden = false; },
  }));

  const permissions = h('div', {});
  async function drawPermissions() {
    let grants;
    try {
      grants = (await api('GET', path + '/permissions/')).grants;
    } catch (error) {
      permissions.replaceChildren(h('p', { class: 'muted' }, error.status === 403 ? 'Only the resource\'s owners and admins see and change its permissions.' : describe(error)));
      return;
    }
    permissions.replaceChildren(
      table(['Who', 'Permission', 'Environment', 'Granted', ''], grants.map((g) => [
        g.principalKind === 'everyone' ? badge('everyone', 'warn') : [g.principalName || g.principal, ' ', badge(g.principalKind)], badge(g.permission), g.environment === '*' ? 'every environment' : g.environment,
        when(g.createdAt),
        h('td', { class: 'actions' }, g.resource === '*' ? h('span', { class: 'muted' }, 'on every resource') : h('button', {
          type: 'button', class: 'danger', onclick: (e) => act(e.currentTarget, async () => {
            await api('DELETE', `${path}/permissions/${encodeURIComponent(g.id)}`);
            notice('Permission removed.', 'ok');
            await drawPermissions();
          }),
        }, 'Remove'))]), 'No grants.'),
      h('form', {
        class: 'grid', onsubmit: onSubmit(async (form) => {
          const grant = { permission: form.elements.permission.value, environment: form.elements.genv.value || '*' };
          if (form.elements.kind.value === 'everyone') grant.everyone = true;
          else grant[form.elements.kind.value] = form.elements.principal.value.trim();
          await api('POST', path + '/permissions/', grant);
          notice('Permission granted.', 'ok');
          await drawPermissions();
        }),
      },
      field('To', h('select', {
        name: 'kind', onchange: (e) => {
          const name = e.currentTarget.form.elements.principal;
          name.disabled = e.currentTarget.value === 'everyone';
          name.required = !name.disabled;
        },
      }, h('option', { value: 'user' }, 'user'), h('option', { value: 'group' }, 'group'), h('option', { value: 'everyone' }, 'everyone'))),
      field('Name', h('input', { name: 'principal', required: true })),
      field('Permission', h('select', { name: 'permission' }, ['use', 'edit', 'own'].map((p) => h('option', {}, p)))),
      field('Environment', h('select', { name: 'genv' }, h('option', { value: '*' }, 'every environment'), state.environments.map((e) => h('option', {}, e)))),
      h('button', { type: 'submit' }, 'Grant')));
  }

  const envSelect = environmentSelect(environment, () => {
    environment = envSelect.value;
    history.replaceState(null, '', `#/resources/${encodeURIComponent(name)}?env=${encodeURIComponent(environment)}`);
    drawCredential();
  });

  show(
    h('div', { class: 'head' },
      h('div', {}, h('p', { class: 'muted' }, h('a', { href: '#/resources' }, 'Resources'), ' /'), h('h1', {}, name),
        h('p', { class: 'muted' }, resource.definition.description || '', ' ', badge(auth), ' ', h('span', { class: 'mono' }, resource.definition.baseUrl))),
      h('label', {}, 'Environment', envSelect)),
    unboundCard(name),
    h('div', { class: 'split' },
      h('div', { class: 'card' }, h('h2', {}, 'Credential'), credential,
        h('div', { class: 'row' },
          dynamicAuth.has(auth) ? h('button', {
            type: 'button', class: 'secondary', onclick: (e) => act(e.currentTarget, async () => {
              await api('POST', `${path}/credential/refresh?environment=${encodeURIComponent(environment)}`);
              notice('Credential refreshed.', 'ok');
              await drawCredential();
            }),
          }, 'Refresh now') : null,
          auth === 'oauth2' && resource.definition.auth.grant === 'authorization_code'
            ? h('button', {
              type: 'button', class: 'secondary', id: 'connect', onclick: () => {
                // To the provider and back here: Keyway's callback stores the tokens, then returns to this page.
                const back = `/console#/resources/${encodeURIComponent(name)}?env=${encodeURIComponent(environment)}`;
                location.href = `/api/v1${path}/connect?environment=${encodeURIComponent(environment)}&returnTo=${encodeURIComponent(back)}`;
              },
            }, 'Connect account')
            : null,
          dynamicAuth.has(auth) ? h('button', {
            type: 'button', class: 'danger', onclick: (e) => act(e.currentTarget, async () => {
              if (!confirm(`Disconnect ${name} in ${environment}? Keyway revokes the tokens at the provider where it can and forgets them.`)) return;
              await api('DELETE', `${path}/credential?environment=${encodeURIComponent(environment)}`);
              notice('Disconnected.', 'ok');
              await drawCredential();
            }),
          }, 'Disconnect') : null,
          null),
        dynamicAuth.has(auth) ? h('details', {}, h('summary', {}, 'Import tokens obtained elsewhere'),
          h('form', {
            class: 'stack', id: 'import-credential', onsubmit: onSubmit(async (form) => {
              const body = {};
              if (form.elements.accessToken.value) body.accessToken = form.elements.accessToken.value;
              if (form.elements.refreshToken.value) body.refreshToken = form.elements.refreshToken.value;
              if (form.elements.expiresIn.value) body.expiresIn = Number(form.elements.expiresIn.value);
              try {
                await api('PUT', `${path}/credential?environment=${encodeURIComponent(environment)}`, body);
              } finally {
                // The tokens leave this page with the request: they are not kept in the form.
                form.reset();
              }
              notice(`Tokens imported for ${environment}; Keyway refreshes them from now on.`, 'ok');
              await drawCredential();
            }),
          },
          h('p', { class: 'muted' }, 'Stored encrypted and never shown again. A refresh token alone is enough: Keyway gets an access token with it.'),
          field('Access token', h('input', { name: 'accessToken', type: 'password', autocomplete: 'off' })),
          field('Refresh token', h('input', { name: 'refreshToken', type: 'password', autocomplete: 'off' })),
          field('Expires in (seconds)', h('input', { name: 'expiresIn', type: 'number', min: 1 })),
          h('div', {}, h('button', { type: 'submit' }, 'Import')))) : null,
        h('h3', {}, 'Test connection'), debuggerPanel(path, () => environment)),
      h('div', { class: 'card' }, h('h2', {}, 'Run a request'), runForm, result)),
    h('div', { class: 'card' },
      h('div', { class: 'head' }, h('h2', {}, 'Configuration'),
        h('div', { class: 'row' },
          h('button', { type: 'button', class: 'secondary', id: 'edit-resource', onclick: () => { editor.hidden = false; configuration.hidden = true; } }, 'Edit'),
          h('button', {
            type: 'button', class: 'danger', onclick: (e) => act(e.currentTarget, async () => {
              if (!confirm(`Delete the resource ${name}? Its credentials and saved queries stop working.`)) return;
              await api('DELETE', path);
              notice(`Resource ${name} deleted.`, 'ok');
              location.hash = '#/resources';
            }),
          }, 'Delete'))),
      h('p', { class: 'muted' }, `Version ${resource.version}, updated ${when(resource.updatedAt)}. Secret values are never shown here: templates name them.`),
      configuration, editor),
    h('div', { class: 'card' }, h('h2', {}, 'Permissions'), permissions));
  await Promise.all([drawCredential(), drawPermissions()]);
}

// ---- Queries ------------------------------------------------------------------------------
const exampleQuery = {
  resource: 'github',
  method: 'GET',
  path: '/repos/{{ inputs.owner }}/{{ inputs.repo }}/issues',
  query: { state: "{{ inputs.state || 'open' }}" },
  headers: { 'X-Requested-By': '{{ current_user.email }}' },
};

async function renderQueries() {
  const { queries } = await api('GET', '/queries/');
  const result = h('div', { id: 'query-result' });
  const editor = h('form', {
    class: 'stack', id: 'save-query', onsubmit: onSubmit(async (form) => {
      const name = form.elements.name.value.trim();
      await api('PUT', '/queries/' + encodeURIComponent(name), parseJson(form.elements.definition.value, 'The definition is not valid JSON'));
      notice(`Query ${name} saved.`, 'ok');
      await renderQueries();
    }),
  },
  field('Name', h('input', { name: 'name', required: true, placeholder: 'open-issues' })),
  field('Definition (JSON; templates see inputs, current_user and plain variables)', h('textarea', { name: 'definition', rows: 9, spellcheck: 'false' }, pretty(exampleQuery))),
  h('div', {}, h('button', { type: 'submit' }, 'Save query')));
  const edit = (q) => {
    editor.elements.name.value = q.name;
    editor.elements.definition.value = pretty(withoutNulls(q.definition));
    editor.scrollIntoView({ behavior: 'smooth' });
    editor.elements.definition.focus();
  };
  show(
    h('div', { class: 'head' }, h('div', {}, h('h1', {}, 'Saved queries'), h('p', { class: 'muted' }, 'Requests saved against a resource, run by name with inputs.'))),
    h('div', { class: 'card', id: 'queries' }, table(['Name', 'Resource', 'Request', 'Updated', ''], queries.map((q) => {
      const d = q.definition || {};
      return [h('span', { class: 'mono' }, q.name), d.resource, h('span', { class: 'mono' }, `${d.method || 'GET'} ${d.path || '/'}`), when(q.updatedAt),
        h('td', { class: 'actions' }, h('div', { class: 'row' },
          h('button', { type: 'button', class: 'secondary', onclick: () => edit(q) }, 'Edit'),
          h('button', {
            type: 'button', class: 'danger', onclick: (e) => act(e.currentTarget, async () => {
              if (!confirm(`Delete the saved query ${q.name}? Apps that run it by name stop working.`)) return;
              await api('DELETE', '/queries/' + encodeURIComponent(q.name));
              notice(`Query ${q.name} deleted.`, 'ok');
              await renderQueries();
            }),
          }, 'Delete')))];
    }), 'No saved queries yet. Save one below, with `keyway query apply FILE`, or PUT /api/v1/queries/{name}.')),
    queries.length ? h('div', { class: 'card' }, h('h2', {}, 'Run a query'),
      h('form', {
        class: 'grid', id: 'run-query', onsubmit: onSubmit(async (form) => {
          const inputs = form.elements.inputs.value.trim() ? parseJson(form.elements.inputs.value, 'Inputs must be a JSON object') : {};
          try {
            const answer = await api('POST', `/queries/${encodeURIComponent(form.elements.query.value)}/run`, { environment: form.elements.environment.value, inputs });
            result.replaceChildren(...answerView(answer));
          } catch (error) {
            result.replaceChildren(errorBox(error));
          }
        }),
      },
      field('Query', h('select', { name: 'query' }, queries.map((q) => h('option', {}, q.name)))),
      field('Environment', environmentSelect('production')),
      field('Inputs (JSON)', h('input', { name: 'inputs', placeholder: '{"id": 42}', class: 'mono' })),
      h('button', { type: 'submit' }, 'Run')), result) : null,
    h('div', { class: 'card' }, h('h2', {}, 'Save a query'),
      h('p', { class: 'muted' }, 'Saving needs use on its resource. A name that exists is replaced.'), editor));
}

// ---- Variables (admin) --------------------------------------------------------------------
async function renderVariables(environment, openVersions) {
  environment = environment && state.environments.includes(environment) ? environment : 'production';
  const { variables } = await api('GET', `/environments/${encodeURIComponent(environment)}/variables`);
  const vpath = (n) => `/environments/${encodeURIComponent(environment)}/variables/${encodeURIComponent(n)}`;
  const secretBox = h('input', { type: 'checkbox', name: 'secret', checked: true });
  const value = h('input', { name: 'value', type: 'password', autocomplete: 'off', required: true });
  secretBox.addEventListener('change', () => { value.type = secretBox.checked ? 'password' : 'text'; });
  const versionsCard = h('div', { class: 'card', id: 'variable-versions', hidden: true });
  // A variable's versions, never a value: each earlier one can be made current again (as a new version).
  async function drawVersions(name) {
    const { versions } = await api('GET', vpath(name) + '/versions');
    const rotation = await drawRotations(name);
    versionsCard.hidden = false;
    versionsCard.replaceChildren(h('h2', {}, `Versions of ${name} in ${environment}`),
      h('p', { class: 'muted' }, 'A rollback makes an earlier value current again as a new version; requests already under way finish with the value they started with.'),
      table(['Version', 'State', 'Set by', 'Set at', 'Expires', 'Restored from', 'Key at the provider', ''], versions.map((v) => [
        String(v.version),
        v.current ? badge('current', 'ok') : badge(v.state),
        v.setBy ? v.setBy + (v.setByKey ? ` (key ${v.setByKey})` : '') : '—',
        when(v.setAt),
        v.expiresAt ? [when(v.expiresAt), v.expiresFrom === 'jwt' ? ' (jwt)' : '', v.expired ? [' ', badge('expired', 'bad')] : ''] : '—',
        v.restoredFrom ? String(v.restoredFrom) : '—',
        versionKey(v),
        h('td', { class: 'actions' }, v.current || v.state === 'pending' ? null : h('button', {
          type: 'button', class: 'secondary', 'data-rollback': String(v.version), onclick: (e) => act(e.currentTarget, async () => {
            if (!confirm(`Make version ${v.version} of ${name} current again in ${environment}?`)) return;
            const written = await api('POST', vpath(name) + '/rollback', { version: v.version });
            notice(`${name} rolled back to the value of version ${v.version} (now version ${written.version}).`, 'ok');
            // The whole page again (the table shows the new version), with this list open.
            await renderVariables(environment, name);
          }),
        }, 'Roll back')),
      ]), 'No versions.'), rotation || '');
  }
  // What became of a version's key at the provider (a rotation minted it): its id, and the revoke a rotation owes or
  // did for it — revoked, pending (when), gave up (revoke it by hand) or not revoked — with the rotation's reason.
  function versionKey(v) {
    const by = v.revokeBy;
    const status = by ? by.status : v.revoke === 'revoked' ? 'revoked' : v.revoke === 'skipped' ? 'skipped' : v.revoke === 'owed' && !v.current ? 'live' : null;
    if (!v.providerId && !status) return '—';
    return h('div', { class: 'revoke-state', 'data-version-revoke': status || 'none' },
      v.providerId ? h('span', { class: 'mono' }, v.providerId) : null,
      status ? [v.providerId ? ' ' : '', revokeBadge(status)] : null,
      status === 'pending' && by && by.dueAt ? h('div', { class: 'muted' }, `due ${when(by.dueAt)}${by.attempts ? ` (after ${by.attempts} failed ${by.attempts === 1 ? 'attempt' : 'attempts'})` : ''}`) : null,
      status === 'live' ? h('div', { class: 'muted' }, 'No revoke is scheduled: the next rotation revokes it only if it replaces this version.') : null,
      by && by.reason ? h('div', { class: 'muted revoke-reason' }, by.reason) : null);
  }
  // A secret's rotation flow, if it has one: the latest rotations (states, versions, provider ids, error codes;
  // never a value) and a button that runs one now. Defining a flow is done with the API or the CLI.
  async function drawRotations(name) {
    let defined = true;
    try {
      await api('GET', vpath(name) + '/rotation');
    } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 404) throw e;
      defined = false;
    }
    const { rotations } = await api('GET', vpath(name) + '/rotations?limit=10');
    if (!defined && rotations.length === 0) return null;
    const tone = (s) => (s === 'committed' || s === 'revoked' ? 'ok' : s === 'failed' || s === 'rolled_back' || s === 'revoke_failed' ? 'bad' : 'warn');
    return h('div', { id: 'variable-rotations' },
      h('h3', {}, 'Rotation'),
      h('p', { class: 'muted' }, defined
        ? 'Rotate mints a new secret at the provider, stores it as pending, verifies it, then makes it current; the old one is revoked after the grace period.'
        : `No rotation flow: define one with keyway var rotation set ${name} --env ${environment} -f rotation.json.`),
      defined ? h('button', {
        type: 'button', id: 'rotate-variable', 'data-rotate': name, onclick: (e) => act(e.currentTarget, async () => {
          if (!confirm(`Rotate ${name} in ${environment} now?`)) return;
          try {
            const done = await api('POST', vpath(name) + '/rotate');
            notice(`${name} rotated: version ${done.version} is current.`, 'ok');
          } finally {
            await renderVariables(environment, name);
          }
        }),
      }, 'Rotate now') : null,
      table(['Started', 'State', 'Trigger', 'From', 'Version', 'Provider id', 'Revoke', 'Minted key, abandoned', 'Error'], rotations.map((r) => [
        when(r.startedAt), badge(r.state, tone(r.state)), r.trigger, r.fromVersion ? String(r.fromVersion) : '—', r.version ? String(r.version) : '—',
        r.newId ? h('span', { class: 'mono' }, r.newId) : '—',
        r.revokeDueAt && !r.abandonedRevoke ? when(r.revokeDueAt) : '—',
        // A key this rotation minted and did not commit is revoked at the provider (or the record says why not).
        r.abandonedRevoke ? h('div', { class: 'revoke-state', 'data-abandoned-revoke': r.abandonedRevoke },
          revokeBadge(r.abandonedRevoke),
          r.abandonedRevoke === 'pending' && r.revokeDueAt ? h('div', { class: 'muted' }, `due ${when(r.revokeDueAt)}${r.revokeAttempts ? ` (after ${r.revokeAttempts} failed ${r.revokeAttempts === 1 ? 'attempt' : 'attempts'})` : ''}`) : null,
          r.abandonedRevokeError ? h('div', { class: 'muted revoke-reason' }, r.abandonedRevokeError) : null) : '—',
        r.errorCode ? [h('span', { class: 'mono' }, r.errorCode), r.error ? h('div', { class: 'muted revoke-reason' }, r.error) : null] : '—',
      ]), 'No rotations yet.'));
  }
  show(
    h('div', { class: 'head' },
      h('div', {}, h('h1', {}, 'Configuration variables'),
        h('p', { class: 'muted' }, 'A secret is write-only: encrypted at rest, usable in resource configuration, never shown again.')),
      h('label', {}, 'Environment', environmentSelect(environment, (e) => { location.hash = '#/variables/' + encodeURIComponent(e.currentTarget.value); }))),
    h('div', { class: 'card' }, table(['Name', 'Value', 'Version', 'Sent only to', 'Expires', 'Updated', ''], variables.map((v) => [
      h('span', { class: 'mono' }, v.name),
      v.secret ? [badge('secret', 'warn'), ' ', h('span', { class: 'muted' }, 'hidden')] : h('span', { class: 'mono' }, v.value),
      String(v.version),
      !v.secret ? '—' : v.origins && v.origins.length ? h('span', { class: 'mono' }, v.origins.join(', ')) : h('span', { class: 'muted' }, 'any origin'),
      [v.expiresAt && new Date(v.expiresAt) < new Date() ? [when(v.expiresAt), ' ', badge('expired', 'bad')] : when(v.expiresAt),
        v.rotateBy ? [h('br'), h('span', { class: 'muted' }, 'rotate by '), when(v.rotateBy), v.attention === 'rotate_overdue' ? [' ', badge('overdue', 'warn')] : ''] : '',
        v.expiredPolicy === 'block' ? [' ', badge('blocks when expired', 'warn')] : ''],
      when(v.updatedAt),
      h('td', { class: 'actions' }, h('button', {
        type: 'button', class: 'secondary', 'data-versions': v.name, onclick: (e) => act(e.currentTarget, () => drawVersions(v.name)),
      }, 'Versions'), v.secret ? h('button', {
        type: 'button', class: 'secondary', onclick: (e) => act(e.currentTarget, async () => {
          const text = prompt(`Origins ${v.name} may be sent to in ${environment}, separated by commas (https://api.example.com, https://*.example.com). Empty: any origin.`,
            (v.origins || []).join(', '));
          if (text === null) return;
          const origins = text.split(',').map((o) => o.trim()).filter(Boolean);
          await api('PUT', vpath(v.name) + '/origins', { origins });
          notice(origins.length ? `${v.name} is sent only to ${origins.join(', ')}.` : `${v.name} is bound to no origin.`, 'ok');
          await renderVariables(environment);
        }),
      }, 'Origins') : null, h('button', {
        type: 'button', class: 'danger', onclick: (e) => act(e.currentTarget, async () => {
          if (!confirm(`Delete ${v.name} in ${environment}? Resources that use it stop working there.`)) return;
          await api('DELETE', vpath(v.name));
          notice(`${v.name} deleted.`, 'ok');
          await renderVariables(environment);
        }),
      }, 'Delete'))]), `No variables in ${environment} yet.`)),
    versionsCard,
    h('div', { class: 'card' }, h('h2', {}, `Set a variable in ${environment}`),
      h('p', { class: 'muted' }, 'Setting a secret that exists makes a new version; the old one is kept for rollback.'),
      h('form', {
        class: 'grid', id: 'set-variable', onsubmit: onSubmit(async (form) => {
          const n = form.elements.name.value.trim();
          try {
            const expires = form.elements.expires.value;
            const body = {
              value: form.elements.value.value,
              secret: form.elements.secret.checked,
              // The picker's value is local time without an offset; the API wants an instant.
              expiresAt: expires ? new Date(expires).toISOString() : null,
            };
            // Left empty, a policy field keeps what the variable has.
            const origins = list(form.elements.origins.value);
            if (origins.length) body.origins = origins;
            if (form.elements.rotateEvery.value.trim()) body.rotateEvery = form.elements.rotateEvery.value.trim();
            if (form.elements.expiredPolicy.value) body.expiredPolicy = form.elements.expiredPolicy.value;
            if (form.elements.keepVersions.value) body.keepVersions = Number(form.elements.keepVersions.value);
            await api('PUT', vpath(n), body);
          } finally {
            form.elements.value.value = '';
          }
          notice(`${n} saved in ${environment}.`, 'ok');
          await renderVariables(environment);
        }),
      },
      field('Name', h('input', { name: 'name', required: true, placeholder: 'GITHUB_TOKEN', class: 'mono' })),
      field('Value', value),
      field('Expires (optional)', h('input', { name: 'expires', type: 'datetime-local' })),
      h('label', { class: 'check' }, secretBox, 'Secret'),
      field('Send only to (origins, optional)', h('input', { name: 'origins', class: 'mono', placeholder: 'https://api.example.com' })),
      field('Rotate every (optional)', h('input', { name: 'rotateEvery', placeholder: '90d' })),
      field('When expired', h('select', { name: 'expiredPolicy' }, h('option', { value: '' }, 'unchanged (default: use and flag)'),
        h('option', { value: 'warn' }, 'use it and flag it'), h('option', { value: 'block' }, 'refuse to send it'))),
      field('Versions kept (optional)', h('input', { name: 'keepVersions', type: 'number', min: 1 })),
      h('button', { type: 'submit' }, 'Save'))),
    environment === 'production' ? null : h('div', { class: 'card' }, h('h2', {}, `Delete ${environment}`),
      h('p', { class: 'muted' }, `Deletes the environment with all its variables and secrets. Resources stop working in ${environment}; production cannot be deleted.`),
      h('button', {
        type: 'button', class: 'danger', id: 'delete-environment', onclick: (e) => act(e.currentTarget, async () => {
          if (!confirm(`Delete the environment ${environment} with all its variables? This cannot be undone.`)) return;
          await api('DELETE', '/environments/' + encodeURIComponent(environment));
          await loadEnvironments();
          notice(`Environment ${environment} deleted.`, 'ok');
          location.hash = '#/variables';
        }),
      }, `Delete ${environment}`)),
    h('div', { class: 'card' }, h('h2', {}, 'New environment'),
      h('form', {
        class: 'grid', onsubmit: onSubmit(async (form) => {
          const n = form.elements.env.value.trim();
          await api('PUT', '/environments/' + encodeURIComponent(n), {});
          await loadEnvironments();
          notice(`Environment ${n} created.`, 'ok');
          location.hash = '#/variables/' + encodeURIComponent(n);
        }),
      },
      field('Name', h('input', { name: 'env', required: true, placeholder: 'staging' })),
      h('button', { type: 'submit' }, 'Create'))));
  if (openVersions) await drawVersions(openVersions);
}

// ---- API keys -----------------------------------------------------------------------------
async function renderKeys() {
  const { keys } = await api('GET', '/keys/');
  const created = h('div', {});
  const scopeText = (s) => !s ? 'everything its owner may do'
    : [s.resources && 'resources: ' + s.resources.join(', '), s.environments && 'environments: ' + s.environments.join(', '), s.actions && 'actions: ' + s.actions.join(', ')]
      .filter(Boolean).join('; ') || 'everything its owner may do';
  const status = (k) => k.revokedAt ? badge('revoked', 'bad') : k.expiresAt && new Date(k.expiresAt) < new Date() ? badge('expired', 'bad') : badge('active', 'ok');
  show(
    h('div', { class: 'head' }, h('div', {}, h('h1', {}, 'API keys'),
      h('p', { class: 'muted' }, isAdmin() ? 'Every key, for apps and scripts. Keyway keeps only their hashes.' : 'Your keys, for apps and scripts. Keyway keeps only their hashes.'))),
    created,
    h('div', { class: 'card' }, table(['Name', 'Owner', 'Key', 'Scope', 'Expires', 'Last used', 'Status', ''], keys.map((k) => [
      k.name, k.owner, h('span', { class: 'mono' }, k.hint), scopeText(k.scopes), when(k.expiresAt), when(k.lastUsedAt), status(k),
      h('td', { class: 'actions' }, k.revokedAt ? null : h('button', {
        type: 'button', class: 'danger', onclick: (e) => act(e.currentTarget, async () => {
          if (!confirm(`Revoke the key ${k.name}? Whatever uses it stops working at once.`)) return;
          await api('DELETE', '/keys/' + encodeURIComponent(k.id));
          notice(`Key ${k.name} revoked.`, 'ok');
          await renderKeys();
        }),
      }, 'Revoke'))]), 'No keys yet.')),
    h('div', { class: 'card' }, h('h2', {}, 'New key'),
      h('p', { class: 'muted' }, 'Scopes only narrow what the owner may do. Leave them empty for all of it.'),
      h('form', {
        class: 'grid', id: 'new-key', onsubmit: onSubmit(async (form) => {
          const body = { name: form.elements.name.value.trim() };
          if (form.elements.expires.value.trim()) body.expiresIn = form.elements.expires.value.trim();
          if (form.elements.owner && form.elements.owner.value.trim()) body.owner = form.elements.owner.value.trim();
          const scopes = {};
          for (const part of ['resources', 'environments', 'actions']) {
            const values = list(form.elements[part].value);
            if (values.length) scopes[part] = values;
          }
          if (Object.keys(scopes).length) body.scopes = scopes;
          const answer = await api('POST', '/keys/', body);
          await renderKeys();
          shownOnce({
            title: `Key ${answer.key.name} created`, text: 'Copy it now: Keyway keeps only its hash and will not show it again.',
            value: answer.token, done: 'I have saved it', id: 'new-token', copy: true,
          });
        }),
      },
      field('Name', h('input', { name: 'name', required: true, placeholder: 'billing-app' })),
      isAdmin() ? field('Owner (user or service identity)', h('input', { name: 'owner', placeholder: state.me.name })) : null,
      field('Expires in', h('input', { name: 'expires', placeholder: '30d, 12h, 2w (empty: never)' })),
      field('Resources', h('input', { name: 'resources', placeholder: 'billing, github' })),
      field('Environments', h('input', { name: 'environments', placeholder: 'production' })),
      field('Actions', h('input', { name: 'actions', placeholder: 'use' })),
      h('button', { type: 'submit' }, 'Create key'))));
}

// ---- Webhooks (admin) ---------------------------------------------------------------------
async function renderWebhooks(name) {
  if (name) return renderWebhookDeliveries(name);
  const { webhooks, eventTypes } = await api('GET', '/webhooks/');
  const showSecret = (answer, what) => shownOnce({
    title: `${what}: ${answer.webhook.name}`, text: answer.message, value: answer.secret, done: 'I have stored it', id: 'new-secret', copy: true,
  });
  show(
    h('div', { class: 'head' }, h('div', {}, h('h1', {}, 'Webhooks'),
      h('p', { class: 'muted' }, 'Where alerts are delivered: signed per Standard Webhooks, retried with backoff. A signing secret is shown once, when it is made.'))),
    h('div', { class: 'card', id: 'webhooks' }, table(['Name', 'URL', 'Events', 'Status', ''], webhooks.map((w) => [
      h('a', { href: '#/webhooks/' + encodeURIComponent(w.name) }, w.name), h('span', { class: 'mono' }, w.url),
      w.events ? w.events.join(', ') : 'all', w.enabled ? badge('enabled', 'ok') : badge('disabled', 'warn'),
      h('td', { class: 'actions' },
        h('button', {
          type: 'button', class: 'secondary', onclick: (e) => act(e.currentTarget, async () => {
            const delivery = await api('POST', `/webhooks/${encodeURIComponent(w.name)}/test`);
            notice(`Test event queued as ${delivery.id}.`, 'ok');
          }),
        }, 'Send test'),
        h('button', {
          type: 'button', class: 'secondary', onclick: (e) => act(e.currentTarget, async () => {
            if (!confirm(`Give ${w.name} a new signing secret? The old one keeps signing for 24 hours.`)) return;
            const answer = await api('POST', `/webhooks/${encodeURIComponent(w.name)}/rotate-secret`, {});
            await renderWebhooks();
            showSecret(answer, 'New signing secret');
          }),
        }, 'Rotate secret'),
        h('button', {
          type: 'button', class: 'danger', onclick: (e) => act(e.currentTarget, async () => {
            if (!confirm(`Delete the webhook endpoint ${w.name} and its delivery history?`)) return;
            await api('DELETE', '/webhooks/' + encodeURIComponent(w.name));
            notice(`Webhook endpoint ${w.name} deleted.`, 'ok');
            await renderWebhooks();
          }),
        }, 'Delete'))]), 'No webhook endpoints yet: alerts go nowhere.')),
    h('div', { class: 'card' }, h('h2', {}, 'New endpoint'),
      h('form', {
        class: 'grid', id: 'new-webhook', onsubmit: onSubmit(async (form) => {
          const body = { name: form.elements.name.value.trim(), url: form.elements.url.value.trim() };
          const events = list(form.elements.events.value);
          if (events.length) body.events = events;
          if (form.elements.description.value.trim()) body.description = form.elements.description.value.trim();
          const answer = await api('POST', '/webhooks/', body);
          await renderWebhooks();
          showSecret(answer, 'Webhook endpoint created');
        }),
      },
      field('Name', h('input', { name: 'name', required: true, placeholder: 'ops' })),
      field('URL', h('input', { name: 'url', required: true, type: 'url', placeholder: 'https://hooks.example.com/keyway' })),
      field('Events (empty: all)', h('input', { name: 'events', placeholder: eventTypes.slice(4, 7).join(', '), title: eventTypes.join(', ') })),
      field('Description', h('input', { name: 'description', placeholder: 'On-call pager' })),
      h('button', { type: 'submit' }, 'Create endpoint'))));
}

async function renderWebhookDeliveries(name) {
  const { deliveries } = await api('GET', `/webhooks/${encodeURIComponent(name)}/deliveries`);
  const status = (d) => badge(d.status, d.status === 'succeeded' ? 'ok' : d.status === 'failed' ? 'bad' : 'warn');
  show(
    h('div', { class: 'head' }, h('div', {}, h('h1', {}, `Deliveries to ${name}`),
      h('p', { class: 'muted' }, h('a', { href: '#/webhooks' }, '← Webhooks'), ' Newest first. A redelivery sends the same payload under a new id.'))),
    h('div', { class: 'card', id: 'deliveries' }, table(['Id', 'Event', 'Status', 'Attempts', 'Last answer', 'Next attempt', 'Created', ''], deliveries.map((d) => [
      h('span', { class: 'mono' }, d.id), d.eventType, status(d), String(d.attempts),
      d.lastStatusCode ? String(d.lastStatusCode) : d.lastError || '—', when(d.nextAttemptAt), when(d.createdAt),
      h('td', { class: 'actions' },
        h('details', {}, h('summary', {}, 'Payload'), h('pre', {}, pretty(d.payload))),
        h('button', {
          type: 'button', class: 'secondary', onclick: (e) => act(e.currentTarget, async () => {
            const again = await api('POST', `/webhooks/${encodeURIComponent(name)}/deliveries/${encodeURIComponent(d.id)}/redeliver`);
            notice(`Queued again as ${again.id}.`, 'ok');
            await renderWebhookDeliveries(name);
          }),
        }, 'Redeliver'))]), 'No deliveries yet. Send a test event from the Webhooks page.')));
}

// ---- Audit (admin) ------------------------------------------------------------------------
async function renderAudit() {
  const params = new URLSearchParams(location.hash.split('?')[1] || '');
  const query = new URLSearchParams();
  for (const name of ['actor', 'action', 'resource', 'before']) if (params.get(name)) query.set(name, params.get(name));
  // The picker's value is local time without an offset; the API wants an instant.
  if (params.get('since') && !isNaN(new Date(params.get('since')))) query.set('since', new Date(params.get('since')).toISOString());
  const pageSize = 200;
  query.set('limit', String(pageSize));
  const { events } = await api('GET', '/audit/?' + query);
  // Paging back: the same filters, before the oldest event on this page.
  const older = new URLSearchParams(params);
  if (events.length) older.set('before', String(events[0].seq));
  const newest = new URLSearchParams(params);
  newest.delete('before');
  const verdict = h('div', { id: 'verify-result' });
  const outcome = (o) => badge(o, o === 'success' ? 'ok' : o === 'denied' ? 'bad' : 'warn');
  show(
    h('div', { class: 'head' },
      h('div', {}, h('h1', {}, 'Audit log'), h('p', { class: 'muted' }, 'Append-only and hash-chained: every change, sign-in, key use and run (runs through API keys counted per interval unless a resource says otherwise). Newest first.')),
      h('button', {
        type: 'button', id: 'verify', onclick: (e) => act(e.currentTarget, async () => {
          const v = await api('POST', '/audit/verify');
          verdict.replaceChildren(v.ok
            ? h('p', { class: 'row' }, badge('chain intact', 'ok'),
              `${v.checked} events checked; head #${v.head ? v.head.seq : 0}${v.head && v.head.sealKey ? `, sealed under master key ${v.head.sealKey}` : ''}.`)
            : h('p', { class: 'row error' }, badge('chain broken', 'bad'), `At event #${v.firstBroken.seq}${v.firstBroken.id ? ` (${v.firstBroken.id})` : ''}: ${v.firstBroken.problem}`));
        }),
      }, 'Verify chain')),
    verdict,
    h('div', { class: 'card' },
      h('form', {
        class: 'grid', onsubmit: (event) => {
          event.preventDefault();
          const next = new URLSearchParams();
          for (const name of ['actor', 'action', 'resource', 'since']) if (event.currentTarget.elements[name].value.trim()) next.set(name, event.currentTarget.elements[name].value.trim());
          location.hash = '#/audit?' + next;
        },
      },
      field('Actor', h('input', { name: 'actor', value: params.get('actor') || '', placeholder: 'user name, id or key id' })),
      field('Action', h('input', { name: 'action', value: params.get('action') || '', placeholder: 'run or credential.' })),
      field('Resource', h('input', { name: 'resource', value: params.get('resource') || '' })),
      field('Since', h('input', { name: 'since', type: 'datetime-local', value: params.get('since') || '' })),
      h('button', { type: 'submit' }, 'Filter'))),
    h('div', { class: 'card audit', id: 'audit' }, table(['#', 'When', 'Who', 'Action', 'Outcome', 'Resource', 'Environment', 'Detail'], events.slice().reverse().map((e) => [
      String(e.seq), h('td', { class: 'nowrap' }, when(e.at)),
      h('td', { class: 'nowrap' }, e.actor.name || e.actor.id || e.actor.kind, e.actor.keyId ? h('span', { class: 'muted' }, ' via key') : null),
      h('span', { class: 'mono' }, e.action), outcome(e.outcome), e.resource || '', e.environment || '',
      h('td', { class: 'detail' }, details(e))]), 'No events match.'),
    h('div', { class: 'row' },
      params.get('before') ? h('a', { href: '#/audit?' + newest, id: 'audit-newest' }, '← Newest') : null,
      events.length === pageSize && events[0].seq > 1 ? h('a', { href: '#/audit?' + older, id: 'audit-older' }, 'Older events →') : null)));
}

/** An event's target and detail as short "name value" pairs, e.g. "method GET · path /x · status 200". */
function details(event) {
  if (event.action === 'traffic.rollup' && event.detail) return rollupDetails(event);
  const parts = event.target ? ['target ' + event.target] : [];
  for (const [key, value] of Object.entries(event.detail || {})) {
    if (value !== null && value !== undefined && key !== 'kind') parts.push(`${key} ${typeof value === 'object' ? JSON.stringify(value) : value}`);
  }
  return parts.join(' · ');
}

/** A rollup as one line: "proxy GET 2xx · 23 requests · slowest 40 ms · in 0 B · out 2048 B · 09:15:00–09:16:00". */
function rollupDetails(event) {
  const d = event.detail;
  const time = (t) => (t ? new Date(t).toLocaleTimeString() : '?');
  const parts = event.target ? ['query ' + event.target] : [];
  parts.push([d.kind, d.method, d.statusClass].join(' '), `${d.count} request${d.count === 1 ? '' : 's'}`, `slowest ${d.slowestMs} ms`,
    `in ${d.bytesIn} B`, `out ${d.bytesOut} B`);
  if (d.refreshed) parts.push(`refreshed ${d.refreshed}`);
  if (d.errors) parts.push(`errors ${d.errors}` + (d.errorCodes ? ' (' + Object.entries(d.errorCodes).map(([c, n]) => `${c} ${n}`).join(', ') + ')' : ''));
  parts.push(`${time(d.intervalStart)}–${time(d.intervalEnd)}`);
  return parts.join(' · ');
}

// ---- Users and groups (admin) -------------------------------------------------------------
async function renderUsers() {
  const [{ users }, { groups }] = await Promise.all([api('GET', '/users/'), api('GET', '/groups/')]);
  const path = (u) => '/users/' + encodeURIComponent(u.name);
  const action = (label, kind, run) => h('button', { type: 'button', class: kind, onclick: (e) => act(e.currentTarget, run) }, label);
  show(
    h('div', { class: 'head' }, h('div', {}, h('h1', {}, 'Users & groups'), h('p', { class: 'muted' }, 'People sign in with a password or single sign-on; service identities own API keys.'))),
    h('div', { class: 'card', id: 'users' }, h('h2', {}, 'Users'), table(['Name', 'Email', 'Role', 'Source', 'Groups', 'Status', ''], users.map((u) => [
      u.displayName ? [u.name, h('span', { class: 'muted' }, ' ' + u.displayName)] : u.name, u.email || '', badge(u.role), u.source, (u.groups || []).join(', '),
      u.disabled ? badge('disabled', 'bad') : badge('active', 'ok'),
      h('td', { class: 'actions' }, h('div', { class: 'row' },
        action(u.role === 'admin' ? 'Make member' : 'Make admin', 'secondary', async () => {
          const role = u.role === 'admin' ? 'member' : 'admin';
          await api('PATCH', path(u), { role });
          notice(`${u.name} is now ${role === 'admin' ? 'an admin' : 'a member'}; their sessions start over.`, 'ok');
          await renderUsers();
        }),
        u.source === 'local' ? action('Reset password', 'secondary', async () => {
          if (!confirm(`Give ${u.name} a new password? Their sessions end; their API keys keep working.`)) return;
          const password = newPassword();
          await api('PATCH', path(u), { password });
          shownOnce({ title: `${u.name}'s new password`, text: 'Shown once. Pass it on; they can change it under their name, top right.', value: password, done: 'I have passed it on' });
        }) : null,
        action(u.disabled ? 'Enable' : 'Disable', u.disabled ? 'secondary' : 'danger', async () => {
          await api('PATCH', path(u), { disabled: !u.disabled });
          notice(`${u.name} ${u.disabled ? 'enabled' : 'disabled'}.`, 'ok');
          await renderUsers();
        }),
        action('Delete', 'danger', async () => {
          if (!confirm(`Delete ${u.name} with their API keys, group memberships and grants? This cannot be undone; disabling can.`)) return;
          await api('DELETE', path(u));
          notice(`${u.name} deleted.`, 'ok');
          await renderUsers();
        })))]), 'No users.'),
    h('h2', {}, 'New user'),
    h('form', {
      class: 'grid', id: 'new-user', onsubmit: onSubmit(async (form) => {
        const body = { name: form.elements.name.value.trim(), role: form.elements.role.value, source: form.elements.source.value };
        if (form.elements.email.value.trim()) body.email = form.elements.email.value.trim();
        const answer = await api('POST', '/users/', body);
        await renderUsers();
        if (answer.password) {
          shownOnce({ title: `${answer.user.name} created`, text: 'Their first password, shown once. Ask them to change it after signing in.', value: answer.password, done: 'I have passed it on' });
        } else {
          notice(`${answer.user.name} created.`, 'ok');
        }
      }),
    },
    field('Name', h('input', { name: 'name', required: true })),
    field('Email', h('input', { name: 'email', type: 'email' })),
    field('Role', h('select', { name: 'role' }, h('option', {}, 'member'), h('option', {}, 'admin'))),
    field('Kind', h('select', { name: 'source' }, h('option', { value: 'local' }, 'person (password)'), h('option', { value: 'service' }, 'service identity'))),
    h('button', { type: 'submit' }, 'Create user'))),
    h('div', { class: 'card', id: 'groups' }, h('h2', {}, 'Groups'), table(['Name', 'Description', 'Members', ''], groups.map((g) => [
      g.name, g.description || '',
      h('td', {}, (g.members || []).map((m) => h('span', { class: 'badge member' }, m.user, m.source === 'sso' ? ' (sso)' : '',
        h('button', {
          type: 'button', class: 'link', 'aria-label': `Remove ${m.user} from ${g.name}`, onclick: (e) => act(e.currentTarget, async () => {
            await api('DELETE', `/groups/${encodeURIComponent(g.name)}/members/${encodeURIComponent(m.user)}`);
            notice(`${m.user} removed from ${g.name}.`, 'ok');
            await renderUsers();
          }),
        }, ' ×')))),
      h('td', { class: 'actions' }, action('Delete', 'danger', async () => {
        if (!confirm(`Delete the group ${g.name} with its memberships and the grants given to it?`)) return;
        await api('DELETE', '/groups/' + encodeURIComponent(g.name));
        notice(`Group ${g.name} deleted.`, 'ok');
        await renderUsers();
      }))]), 'No groups.'),
    h('form', {
      class: 'grid', onsubmit: onSubmit(async (form) => {
        const group = form.elements.group.value.trim();
        await api('PUT', '/groups/' + encodeURIComponent(group), { description: form.elements.description.value.trim() || null });
        if (form.elements.member.value.trim()) await api('PUT', `/groups/${encodeURIComponent(group)}/members/${encodeURIComponent(form.elements.member.value.trim())}`);
        notice(`Group ${group} saved.`, 'ok');
        await renderUsers();
      }),
    },
    field('Group', h('input', { name: 'group', required: true, placeholder: 'ops' })),
    field('Description', h('input', { name: 'description' })),
    field('Add member', h('input', { name: 'member', placeholder: 'user name' })),
    h('button', { type: 'submit' }, 'Save group'))));
}

/** A password for someone else to change: 20 characters from a 57-letter alphabet (no 0/O, 1/l/I), about 117 bits. */
function newPassword() {
  const alphabet = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789';
  const bytes = crypto.getRandomValues(new Uint32Array(20));
  return Array.from(bytes, (b) => alphabet[b % alphabet.length]).join('');
}

// ---- Account ------------------------------------------------------------------------------
async function renderAccount() {
  const me = state.me = await api('GET', '/me');
  const message = h('p', { role: 'status' });
  show(
    h('div', { class: 'head' }, h('h1', {}, 'Your account')),
    h('div', { class: 'card' }, h('dl', { class: 'kv' },
      h('dt', {}, 'Name'), h('dd', {}, me.name), h('dt', {}, 'Display name'), h('dd', {}, me.displayName || '—'),
      h('dt', {}, 'Email'), h('dd', {}, me.email || '—'), h('dt', {}, 'Role'), h('dd', {}, me.role),
      h('dt', {}, 'Groups'), h('dd', {}, (me.groups || []).join(', ') || '—'), h('dt', {}, 'Signed in with'), h('dd', {}, me.source === 'oidc' ? 'single sign-on' : 'password'))),
    h('div', { class: 'card' }, h('h2', {}, 'Sessions'),
      h('p', { class: 'muted' }, 'Signed in somewhere you should not be, or on a machine you no longer have? End every console session of yours, this one included. Your API keys keep working: revoke them under API keys.'),
      h('button', {
        type: 'button', class: 'danger', id: 'signout-everywhere', onclick: (e) => act(e.currentTarget, async () => {
          if (!confirm('Sign out of every browser, this one included?')) return;
          await api('POST', '/auth/logout?everywhere=true');
          state.me = null;
          state.csrf = null;
          location.hash = '';
          renderSignIn();
        }),
      }, 'Sign out everywhere')),
    me.source === 'local' ? h('div', { class: 'card' }, h('h2', {}, 'Change password'),
      h('form', {
        class: 'stack narrow-form', id: 'password', onsubmit: onSubmit(async (form) => {
          message.className = '';
          message.textContent = '';
          const fresh = form.elements.new.value;
          if (fresh !== form.elements.confirm.value) {
            message.className = 'error';
            message.textContent = 'The two new passwords differ.';
            return;
          }
          try {
            const answer = await api('POST', '/me/password', { current: form.elements.current.value, new: fresh });
            state.csrf = answer.csrfToken;
            message.textContent = 'Password changed. Your other sessions have ended.';
          } catch (error) {
            message.className = 'error';
            message.textContent = describe(error);
          } finally {
            form.reset();
          }
        }),
      },
      field('Current password', h('input', { name: 'current', type: 'password', autocomplete: 'current-password', required: true })),
      field('New password (at least 12 characters)', h('input', { name: 'new', type: 'password', autocomplete: 'new-password', required: true, minlength: 12 })),
      field('New password again', h('input', { name: 'confirm', type: 'password', autocomplete: 'new-password', required: true })),
      message,
      h('div', {}, h('button', { type: 'submit' }, 'Change password')))) : null);
}

// ---- Start --------------------------------------------------------------------------------
document.addEventListener('DOMContentLoaded', () => {
  const sso = document.querySelector('meta[name=keyway-sso]');
  state.sso = sso && sso.content === 'on';
  $('signout').addEventListener('click', signOut);
  window.addEventListener('hashchange', route);
  start();
});
