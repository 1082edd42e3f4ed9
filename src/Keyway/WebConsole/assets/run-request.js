// "Run a request" on a resource's page (loaded after app.js and form-kit.js): method, path, query
// parameter rows, header rows and a body, sent with POST /api/v1/resources/{name}/run; the answer
// (status, time, headers, formatted body) is drawn by app.js's answerView. A query string typed into
// the path moves into the rows, since the API takes query parameters apart from the path.
'use strict';

/** The form and the element its answer goes in. environment() says where to run. */
function runRequestForm(resourcePath, environment) {
  const call = { query: {}, headers: {} };
  const result = h('div', { id: 'run-result', 'aria-live': 'polite' });
  let queryRows = pairRows(call, 'query', 'Query parameters', { keyPlaceholder: 'color', valuePlaceholder: 'blue' });
  const headerRows = pairRows(call, 'headers', 'Headers', { keyPlaceholder: 'X-Request-Id', valuePlaceholder: 'r-1' });
  const pathInput = h('input', { name: 'path', placeholder: '/path relative to the base URL', 'aria-label': 'Path', class: 'grow mono', spellcheck: 'false' });
  const queryHolder = h('div', {}, queryRows);

  /** "/anything?color=blue" → path "/anything" and a row color = blue. */
  function splitPath() {
    const text = pathInput.value;
    const cut = text.indexOf('?');
    if (cut < 0) return;
    const params = new URLSearchParams(text.slice(cut + 1));
    call.query = call.query || {};
    for (const [k, v] of params) call.query[k] = v;
    pathInput.value = text.slice(0, cut);
    queryRows = pairRows(call, 'query', 'Query parameters', { keyPlaceholder: 'color', valuePlaceholder: 'blue' });
    queryHolder.replaceChildren(queryRows);
  }
  pathInput.addEventListener('change', splitPath);

  const body = h('textarea', { name: 'body', rows: 5, spellcheck: 'false', id: nextId('f'), placeholder: '{"name": "value"}' });
  const form = h('form', {
    class: 'stack', id: 'run', onsubmit: onSubmit(async (f) => {
      splitPath();
      const request = { environment: environment(), method: f.elements.method.value, path: pathInput.value || '/' };
      if (call.query && Object.keys(call.query).length) request.query = { ...call.query };
      if (call.headers && Object.keys(call.headers).length) request.headers = { ...call.headers };
      const raw = body.value.trim();
      if (raw) {
        try { request.body = JSON.parse(raw); } catch { request.body = raw; }
      }
      result.replaceChildren(h('p', { class: 'muted' }, 'Running…'));
      try {
        result.replaceChildren(...answerView(await api('POST', resourcePath + '/run', request)));
      } catch (error) {
        result.replaceChildren(errorBox(error));
      }
    }),
  },
  h('div', { class: 'row' },
    h('select', { name: 'method', 'aria-label': 'Method' }, ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'].map((m) => h('option', {}, m))),
    pathInput,
    h('button', { type: 'submit' }, 'Run')),
  queryHolder,
  h('details', {}, h('summary', {}, 'Headers and body'), headerRows,
    h('div', { class: 'field' }, h('label', { for: body.id }, 'Body (JSON or text)'), body)));
  return { form, result };
}
