// The resource page's "Test connection" as a debugger, and the request a run sent (loaded after app.js,
// whose helpers it uses: h, api, badge, field, pretty, errorBox, act). Everything shown comes from
// POST /api/v1/resources/{name}/test and /run, redacted by the server: the page adds nothing secret.
'use strict';

function sentText(outbound) {
  const headers = Object.entries(outbound.headers || {}).map(([name, value]) => `${name}: ${value}`).join('\n');
  return `${outbound.method} ${outbound.url}` + (headers ? '\n' + headers : '') + (outbound.body ? '\n\n' + outbound.body : '');
}

/** A request as Keyway sent it (method, full URL, headers, body), secrets redacted by the server, beside a run's answer. */
function outboundView(outbound) {
  if (!outbound) return null;
  return h('details', { class: 'outbound' }, h('summary', {}, 'Request as sent'), h('pre', { class: 'sent' }, sentText(outbound)));
}

/** An answer a step received: status, headers and body excerpt, redacted by the server. */
function stepResponseView(response) {
  if (!response) return null;
  const headers = Object.entries(response.headers || {}).map(([name, value]) => `${name}: ${value}`).join('\n');
  return h('div', {}, h('h4', {}, 'Answer'),
    h('pre', { class: 'received' }, `${response.status}` + (headers ? '\n' + headers : '') + (response.body ? '\n\n' + response.body : '')));
}

const timelineKinds = { configuration: 'configuration', flow: 'login step', discovery: 'discovery', token: 'token request', credential: 'credential', request: 'request' };

/** The steps of a test as a timeline: each expandable to its exchange, the failing one open and marked with its fix. */
function timelineView(report) {
  const failed = report.failedStep;
  const summary = report.ok
    ? h('p', { class: 'row', role: 'status' }, badge('passed', 'ok'), `${report.steps.length} steps`)
    : h('div', { class: 'debug-failed', role: 'alert' },
      h('p', {}, badge('failed', 'bad'), ' at step ', h('strong', {}, failed || '?')),
      report.fix ? h('p', { class: 'fix' }, 'Fix: ', report.fix) : null);
  const items = report.steps.map((step, index) => {
    const isFailed = !step.ok && step.step === failed;
    const time = step.durationMs === undefined || step.durationMs === null ? '' : `${step.durationMs} ms`;
    const head = h('span', { class: 'step-head' },
      h('span', { class: 'step-number' }, String(index + 1)),
      badge(step.ok ? 'ok' : 'failed', step.ok ? 'ok' : 'bad'),
      h('strong', {}, step.step),
      h('span', { class: 'muted' }, timelineKinds[step.kind] || step.kind || ''),
      h('span', { class: 'muted' }, time));
    const body = [
      h('p', { class: 'step-detail' }, step.detail),
      step.fix ? h('p', { class: 'fix' }, 'Fix: ', step.fix) : null,
      step.extracted && step.extracted.length ? h('p', {}, 'Extracted: ', step.extracted.map((n) => h('code', { class: 'extracted' }, n))) : null,
      step.request ? h('div', {}, h('h4', {}, 'Request as sent'), h('pre', { class: 'sent' }, sentText(step.request))) : null,
      stepResponseView(step.response),
    ];
    return h('li', { class: 'step' + (step.ok ? '' : ' failed') + (isFailed ? ' culprit' : ''), 'data-step': step.step },
      h('details', { open: isFailed || undefined }, h('summary', {}, head), h('div', { class: 'step-body' }, body)));
  });
  return [summary, h('ol', { class: 'timeline', 'aria-label': 'Test steps' }, items)];
}

/**
 * The "Test connection" panel: the final request's method, path and query, whether to run the exchange
 * anew, and the timeline. environment() says which environment the page shows.
 */
function debuggerPanel(path, environment) {
  const output = h('div', { id: 'test-result' });
  const form = h('form', {
    class: 'stack', id: 'test-form', onsubmit: onSubmit(async (f) => {
      const body = { method: f.elements.testMethod.value, path: f.elements.testPath.value || undefined, fresh: f.elements.fresh.checked };
      const query = {};
      for (const line of f.elements.testQuery.value.split('\n').map((l) => l.trim()).filter(Boolean)) {
        const at = line.indexOf('=');
        if (at <= 0) throw new Error(`Query parameter "${line}" is not name=value.`);
        query[line.slice(0, at).trim()] = line.slice(at + 1).trim();
      }
      if (Object.keys(query).length) body.query = query;
      output.replaceChildren(h('p', { class: 'muted' }, 'Testing…'));
      try {
        output.replaceChildren(...timelineView(await api('POST', `${path}/test?environment=${encodeURIComponent(environment())}`, body)));
      } catch (error) {
        output.replaceChildren(errorBox(error));
      }
    }),
  },
  h('div', { class: 'row' },
    h('select', { name: 'testMethod', 'aria-label': 'Test request method' }, ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'].map((m) => h('option', {}, m))),
    h('input', { name: 'testPath', placeholder: '/ (the base URL)', 'aria-label': 'Test request path', class: 'grow' }),
    h('button', { type: 'submit', class: 'secondary', id: 'test' }, 'Test connection')),
  h('details', {}, h('summary', {}, 'Query and options'),
    h('div', { class: 'stack' },
      field('Query parameters (one name=value a line)', h('textarea', { name: 'testQuery', rows: 3, spellcheck: 'false', placeholder: 'page=1' })),
      h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'fresh' }),
        'Run the login or token exchange anew (refreshes the credential; otherwise the credential in hand is used)'))));
  return h('div', { class: 'debugger' }, form, output);
}
