// The console's Schedules page (loaded after app.js, whose helpers it uses: h, api, show, table,
// badge, when, act, notice, onSubmit, parseJson, pretty, field). Like the rest of the console it
// shows only what GET /api/v1/schedules returns to the signed-in person, built with textContent.
'use strict';

const exampleSchedule = {
  cron: '0 3 * * *',
  timeZone: 'Europe/Madrid',
  action: 'refresh',
  resource: 'billing',
  environment: 'production',
  maxAttempts: 3,
  misfire: 'fireOnce',
};

function outcomeBadge(run) {
  if (!run) return '—';
  const kind = run.outcome === 'succeeded' ? 'ok' : run.outcome === 'failed' ? 'bad' : 'warn';
  return h('span', {}, badge(run.outcome, kind), run.errorCode ? h('span', { class: 'mono' }, ' ' + run.errorCode) : null);
}

function scheduleTarget(s) {
  const d = s.schedule || {};
  const env = d.environment || 'production';
  if (d.action === 'verify') return 'audit chain';
  if (d.action === 'run') return `query ${d.query} (${env})`;
  return `${d.resource} (${env})`;
}

async function renderSchedules(name) {
  if (name) return renderScheduleHistory(name);
  const { schedules } = await api('GET', '/schedules/');
  const editor = h('form', {
    class: 'stack', id: 'save-schedule', onsubmit: onSubmit(async (form) => {
      const scheduleName = form.elements.name.value.trim();
      const saved = await api('PUT', '/schedules/' + encodeURIComponent(scheduleName), parseJson(form.elements.definition.value, 'The schedule is not valid JSON'));
      notice(`Schedule ${scheduleName} saved; next run ${saved.nextRunLocal || 'never (disabled)'}.`, 'ok');
      await renderSchedules();
    }),
  },
  field('Name', h('input', { name: 'name', required: true, placeholder: 'nightly-refresh' })),
  field('Schedule (JSON: cron, timeZone, action refresh | rotate | run | verify, and its target)', h('textarea', { name: 'definition', rows: 9, spellcheck: 'false' }, pretty(exampleSchedule))),
  h('div', {}, h('button', { type: 'submit' }, 'Save schedule')));
  const edit = (s) => {
    editor.elements.name.value = s.name;
    editor.elements.definition.value = pretty(s.schedule);
    editor.scrollIntoView({ behavior: 'smooth' });
    editor.elements.definition.focus();
  };
  show(
    h('div', { class: 'head' }, h('div', {}, h('h1', {}, 'Schedules'),
      h('p', { class: 'muted' }, 'Refresh or rotate a credential, run a saved query, or verify the audit chain on a cron, once per cluster. Each runs as the person who saved it.'))),
    h('div', { class: 'card', id: 'schedules' }, table(['Name', 'Action', 'Target', 'Cron', 'Next run', 'Last run', ''], schedules.map((s) => [
      h('a', { href: '#/schedules/' + encodeURIComponent(s.name), class: 'mono' }, s.name),
      s.schedule.action, scheduleTarget(s),
      h('span', { class: 'mono' }, s.schedule.cron),
      s.schedule.enabled === false ? badge('disabled', 'warn') : h('td', { class: 'nowrap' }, s.nextRunLocal || '—'),
      outcomeBadge(s.lastRun),
      h('td', { class: 'actions' }, h('div', { class: 'row' },
        h('button', {
          type: 'button', class: 'run-now', onclick: (e) => act(e.currentTarget, async () => {
            let run = await api('POST', '/schedules/' + encodeURIComponent(s.name) + '/run');
            // A run that goes to retry is answered at once (202) and followed here until it ends.
            while (run.outcome === 'running') {
              notice(`Schedule ${s.name}: attempt ${run.attempts} failed (${run.errorCode}); retrying…`);
              await new Promise((resolve) => setTimeout(resolve, 1000));
              run = await api('GET', `/schedules/${encodeURIComponent(s.name)}/runs/${run.id}`);
            }
            notice(`Schedule ${s.name}: ${run.outcome}${run.errorCode ? ' (' + run.errorCode + ')' : ''} after ${run.attempts} attempt(s).`, run.outcome === 'succeeded' ? 'ok' : 'bad');
            await renderSchedules();
          }),
        }, 'Run now'),
        h('button', { type: 'button', class: 'secondary', onclick: () => edit(s) }, 'Edit'),
        h('button', {
          type: 'button', class: 'danger', onclick: (e) => act(e.currentTarget, async () => {
            if (!confirm(`Delete the schedule ${s.name} and its history?`)) return;
            await api('DELETE', '/schedules/' + encodeURIComponent(s.name));
            notice(`Schedule ${s.name} deleted.`, 'ok');
            await renderSchedules();
          }),
        }, 'Delete')))]), 'No schedules yet. Save one below, with `keyway schedule create`, or PUT /api/v1/schedules/{name}.')),
    h('div', { class: 'card' }, h('h2', {}, 'Save a schedule'), editor));
}

async function renderScheduleHistory(name) {
  const { runs } = await api('GET', '/schedules/' + encodeURIComponent(name) + '/history');
  show(
    h('div', { class: 'head' }, h('div', {}, h('h1', {}, 'Schedule ', h('span', { class: 'mono' }, name)),
      h('p', { class: 'muted' }, 'Its latest runs, newest first (the last 100 are kept). '), h('a', { href: '#/schedules' }, '← Schedules'))),
    h('div', { class: 'card', id: 'schedule-history' }, table(['Scheduled', 'Kind', 'Started', 'Outcome', 'Attempts', 'Duration', 'Status', 'Replica'], runs.map((r) => [
      h('td', { class: 'nowrap' }, when(r.scheduledAt)), r.kind, h('td', { class: 'nowrap' }, when(r.startedAt)), outcomeBadge(r), String(r.attempts),
      r.durationMs === null || r.durationMs === undefined ? '—' : `${r.durationMs} ms`, r.status ? String(r.status) : '—', h('span', { class: 'mono' }, r.replica)]),
    'No runs yet.')));
}
