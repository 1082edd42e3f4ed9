// The console's home page, "Attention" (loaded after app.js, whose helpers it uses: h, api, show,
// table, badge, when), and the credential badges of the resource list. It shows what
// GET /api/v1/status/attention and GET /api/v1/status/credentials return to the signed-in person,
// who sees only what they may: names, states, times and error messages, never a value.
'use strict';

// A credential state as a person reads it, and how loud its badge is.
const credentialStates = {
  valid: ['connected', 'ok'],
  refreshing: ['refreshing', 'warn'],
  expiring: ['expiring', 'warn'],
  expired: ['expired', 'bad'],
  failed: ['failing', 'bad'],
  reconnect_required: ['reconnect required', 'bad'],
  not_connected: ['not connected', 'warn'],
};

const attentionStates = {
  expired: ['expired', 'bad'],
  reconnect_required: ['reconnect required', 'bad'],
  failed: ['failing', 'bad'],
  rotate_overdue: ['rotation overdue', 'bad'],
  expiring: ['expiring', 'warn'],
  rotate_due: ['rotation due', 'warn'],
  not_connected: ['not connected', 'warn'],
};

function credentialBadge(stateName) {
  const [text, kind] = credentialStates[stateName] || [stateName, ''];
  return badge(text, kind);
}

function ownerLabel(item) {
  if (!item.owner || item.owner === 'shared') return null;
  return item.owner === state.me.id ? 'you' : (item.ownerName || item.owner);
}

/** Where an item is fixed: the resource's page in its environment, the variable's versions, the schedule's history. */
function fixLink(item) {
  const name = encodeURIComponent(item.name);
  if (item.kind === 'credential') return h('a', { href: `#/resources/${name}?env=${encodeURIComponent(item.environment)}` }, item.name);
  if (item.kind === 'schedule') return h('a', { href: `#/schedules/${name}` }, item.name);
  return h('a', { href: `#/variables/${encodeURIComponent(item.environment)}/${name}` }, item.name);
}

function whatToDo(item) {
  if (item.kind === 'schedule') return 'Open its history; fix the cause, then run it again.';
  if (item.kind === 'variable') {
    return item.state.startsWith('rotate') ? 'Set a new value (keyway var set), or schedule a rotation.' : 'Set a new value before it lapses (keyway var set).';
  }
  return {
    reconnect_required: 'Connect the account again.',
    not_connected: 'Connect an account, or import a token.',
    failed: 'Check the error, then refresh or test the credential.',
    expired: 'Connect again or import a new token.',
    expiring: 'Connect again or import a new token before it lapses.',
  }[item.state] || '';
}

async function renderAttention() {
  const [{ items }, { credentials }] = await Promise.all([api('GET', '/status/attention'), api('GET', '/status/credentials')]);
  const rows = items.map((item) => {
    const [text, kind] = attentionStates[item.state] || [item.state, ''];
    const owner = ownerLabel(item);
    return [
      badge(text, kind),
      item.kind,
      h('span', {}, fixLink(item), owner ? h('span', { class: 'muted' }, ` (${owner})`) : null),
      item.environment || '—',
      h('td', { class: 'nowrap' }, when(item.at)),
      h('td', { class: 'detail' }, item.detail || ''),
      whatToDo(item),
    ];
  });
  // Recent failures: credentials whose last refresh failed and schedules whose last run failed, newest first.
  const failures = [
    ...credentials.filter((c) => c.failedAt).map((c) => ({ at: c.failedAt, kind: 'credential', name: c.resource, environment: c.environment, owner: c.owner, ownerName: c.ownerName, code: c.state, detail: c.lastError })),
    ...items.filter((i) => i.kind === 'schedule').map((i) => ({ at: i.at, kind: 'schedule', name: i.name, environment: i.environment, code: i.detail, detail: '' })),
  ].sort((a, b) => new Date(b.at) - new Date(a.at)).slice(0, 20);
  show(
    h('div', { class: 'head' }, h('div', {}, h('h1', {}, 'Attention'),
      h('p', { class: 'muted' }, 'What needs someone, worst and soonest first: credentials failing, needing a reconnect, expiring or not connected; secrets expired, expiring or due for rotation; schedules whose last run failed. Only what you may see.'))),
    h('div', { class: 'card', id: 'attention' }, table(['State', 'Kind', 'Name', 'Environment', 'When', 'Detail', 'To fix'], rows, 'Nothing needs attention.')),
    h('div', { class: 'card', id: 'failures' }, h('h2', {}, 'Recent failures'),
      table(['When', 'What', 'Environment', 'Error', 'Detail'], failures.map((f) => {
        const owner = ownerLabel(f);
        return [
          h('td', { class: 'nowrap' }, when(f.at)),
          h('span', {}, f.kind, ' ', fixLink(f), owner ? h('span', { class: 'muted' }, ` (${owner})`) : null),
          f.environment || '—',
          h('span', { class: 'mono' }, f.code || '—'),
          h('td', { class: 'detail' }, f.detail || ''),
        ];
      }), 'No recent failures.')));
}

/** The credential states of each resource, by environment, for the resource list's badges. */
async function credentialBadges() {
  try {
    const { credentials } = await api('GET', '/status/credentials');
    const byResource = new Map();
    for (const c of credentials) {
      if (!byResource.has(c.resource)) byResource.set(c.resource, []);
      byResource.get(c.resource).push(c);
    }
    return (resource) => {
      const states = byResource.get(resource) || [];
      if (!states.length) return '—';
      return h('span', { class: 'row' }, states.map((c) => {
        const owner = ownerLabel(c);
        return h('span', { class: 'state', title: `${c.environment}${owner ? ', ' + owner : ''}` },
          h('span', { class: 'muted' }, c.environment + (owner ? ` (${owner})` : '') + ' '), credentialBadge(c.state));
      }));
    };
  } catch {
    // The badges are a convenience: the list still shows without them.
    return () => '—';
  }
}
