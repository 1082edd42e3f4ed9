// The custom login flow's editor (loaded after form-kit.js): the steps Keyway runs to obtain a
// session, in order (add, move, remove), each a request, a variable that extracts a value from an
// earlier answer, or a JavaScript function; where the resulting variables go on every request; and
// what ends the session.
'use strict';

const stepKinds = [['request', 'Request'], ['variable', 'Extract a value'], ['javascript', 'JavaScript']];

function customFlowEditor(model, errors, catalog) {
  const holder = h('div', { class: 'flow' });
  const draw = (focus) => {
    holder.replaceChildren(
      h('p', { class: 'hint' }, 'Keyway runs these steps to log in, keeps the variables they make, and puts them on every request as "Apply" says. A request step\'s answer is read by later steps as {{ NAME.body.field }}, {{ NAME.headers[\'set-cookie\'] }} or {{ NAME.status }}; a secret as {{ environment.variables.NAME }}.'),
      stepList(model, 'auth.steps', 'Login steps', errors, draw, catalog),
      model.auth.refreshSteps
        ? stepList(model, 'auth.refreshSteps', 'Renewal steps', errors, draw, catalog)
        : h('button', { type: 'button', class: 'secondary small', onclick: () => { model.auth.refreshSteps = []; draw(); } }, 'Add a shorter flow to renew the session'),
      pairRows(model, 'auth.apply.headers', 'Apply: headers', { errors, addLabel: 'Add header', keyPlaceholder: 'Authorization', valuePlaceholder: 'Bearer {{ TOKEN }}', hint: 'Where the flow\'s variables go on every request.' }),
      pairRows(model, 'auth.apply.query', 'Apply: query parameters', { errors, addLabel: 'Add query parameter' }),
      pairRows(model, 'auth.apply.cookies', 'Apply: cookies', { errors, addLabel: 'Add cookie', keyPlaceholder: 'session', valuePlaceholder: '{{ SESSION }}' }),
      pairRows(model, 'auth.apply.body', 'Apply: body fields', { errors, addLabel: 'Add body field', keyPlaceholder: 'session_token', valuePlaceholder: '{{ TOKEN }}', hint: 'Set in a JSON object or form body.' }),
      h('fieldset', { class: 'group' }, h('legend', {}, 'When the session ends'),
        bound(model, 'auth.expiresIn', 'Lifetime in seconds (a template)', { errors, mono: true, placeholder: '{{ login.body.expires_in }}' }),
        bound(model, 'auth.jwt', 'Or a JWT whose exp says (a template)', { errors, mono: true, placeholder: '{{ TOKEN }}' }),
        bound(model, 'auth.lifetimeSeconds', 'Else after (seconds)', { kind: 'number', errors }),
        bound(model, 'auth.refresh.statuses', 'Statuses that mean the session was rejected', { kind: 'numbers', errors, placeholder: '401, 419' }),
        bound(model, 'auth.refresh.bodyCondition', 'Or an answer for which this is true', { errors, mono: true, placeholder: "{{ response.body.error == 'session_expired' }}" }),
        bound(model, 'auth.refreshSchedule', 'Log in again on a schedule (cron, UTC)', { errors, mono: true, placeholder: '0 3 * * *' })));
    if (focus) {
      const target = holder.querySelector(focus);
      if (target) target.focus();
    }
  };
  draw();
  return holder;
}

function stepList(model, path, title, errors, redraw, catalog) {
  const key = path.split('.')[1];
  if (!Array.isArray(model.auth[key])) model.auth[key] = [];
  const steps = model.auth[key];
  const move = (i, by) => {
    const [step] = steps.splice(i, 1);
    steps.splice(i + by, 0, step);
    redraw(`[data-step="${path}[${i + by}]"] .step-move-${by < 0 ? 'up' : 'down'}, [data-step="${path}[${i + by}]"] select`);
  };
  const add = (type) => {
    const name = type === 'request' ? `step${steps.length + 1}` : type === 'variable' ? `VALUE${steps.length + 1}` : `script${steps.length + 1}`;
    steps.push(type === 'request' ? { type, name, method: 'POST' } : { type, name });
    redraw(`[data-step="${path}[${steps.length - 1}]"] select`);
  };
  return h('fieldset', { class: 'group steps', 'data-field': path }, h('legend', {}, title),
    errors.for(path, (f) => /\[\d+\]/.test(f.slice(path.length))).length ? h('p', { class: 'field-error' }, errors.for(path, (f) => /\[\d+\]/.test(f.slice(path.length))).join(' ')) : null,
    steps.length === 0 ? h('p', { class: 'hint' }, 'No steps yet.') : null,
    h('ol', { class: 'step-list' }, steps.map((step, i) => stepItem(model, `${path}[${i}]`, step, i, steps.length, errors, redraw, catalog, {
      up: () => move(i, -1), down: () => move(i, 1),
      remove: () => { steps.splice(i, 1); redraw(`[data-field="${path}"] button`); },
    }))),
    h('div', { class: 'row' }, stepKinds.map(([type, label]) => h('button', { type: 'button', class: 'secondary small', onclick: () => add(type) }, `Add ${label.toLowerCase()} step`))));
}

function stepItem(model, at, step, i, count, errors, redraw, catalog, actions) {
  const label = `Step ${i + 1}`;
  const type = bound(model, `${at}.type`, 'Type', {
    kind: 'select', choices: stepKinds, errors, onchange: (value) => {
      // A step keeps its name; fields of the other kind would be refused.
      const kept = { type: value, name: step.name };
      for (const key of Object.keys(step)) delete step[key];
      Object.assign(step, kept, value === 'request' ? { method: 'POST' } : {});
      redraw(`[data-step="${at}"] select`);
    },
  });
  const fields = {
    request: () => [
      h('div', { class: 'row' },
        bound(model, `${at}.method`, 'Method', { kind: 'select', choices: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'].map((m) => [m, m]), errors }),
        h('div', { class: 'grow' }, bound(model, `${at}.url`, 'URL', { errors, mono: true, placeholder: 'https://api.example.com/login' }))),
      pairRows(model, `${at}.headers`, 'Headers', { errors, keyPlaceholder: 'Content-Type', valuePlaceholder: 'application/json' }),
      bound(model, `${at}.body`, 'Body', { kind: 'textarea', errors, rows: 4, placeholder: '{"user": "{{ environment.variables.USER }}", "password": "{{ environment.variables.PASSWORD }}"}', hint: 'Sent as JSON when it is JSON. Name secrets as {{ environment.variables.NAME }}.' }),
      secretHelper(catalog),
    ],
    variable: () => [bound(model, `${at}.value`, 'Value (what to extract)', { errors, mono: true, placeholder: '{{ login.body.access_token }}', hint: 'A template over earlier steps\' answers; the step\'s name becomes a variable, e.g. {{ TOKEN }}.' })],
    javascript: () => [bound(model, `${at}.code`, 'Code', { kind: 'textarea', errors, rows: 5, placeholder: "return { CSRF: login.headers['x-csrf'] };", hint: 'A function body that returns an object; its properties become variables.' })],
  }[step.type || 'request'];
  const title = h('strong', {}, `${label}: ${step.name || '(unnamed)'}`);
  return h('li', { class: 'step', 'data-step': at, 'data-field': at },
    h('div', { class: 'head' }, title,
      h('div', { class: 'row' },
        h('button', { type: 'button', class: 'secondary small step-move-up', disabled: i === 0, 'aria-label': `Move ${label.toLowerCase()} up`, onclick: actions.up }, '↑ Up'),
        h('button', { type: 'button', class: 'secondary small step-move-down', disabled: i === count - 1, 'aria-label': `Move ${label.toLowerCase()} down`, onclick: actions.down }, '↓ Down'),
        h('button', { type: 'button', class: 'danger small', 'aria-label': `Remove ${label.toLowerCase()}`, onclick: actions.remove }, 'Remove'))),
    h('div', { class: 'split' }, type, bound(model, `${at}.name`, 'Name', { errors, mono: true, hint: 'Later steps read it by this name.', onchange: (v) => { title.textContent = `${label}: ${v || '(unnamed)'}`; } })),
    fields ? fields() : h('p', { class: 'field-error' }, `'${step.type}' is not a step type this form knows; edit it in Source.`));
}

/** The secrets a person may name in a step, to copy into a body or header as a template. */
function secretHelper(catalog) {
  const names = catalog() ? [...catalog().keys()].sort() : [];
  if (!names.length) return null;
  return h('p', { class: 'hint' }, 'Secrets you can name: ', names.map((n, i) => [i ? ', ' : '', h('code', {}, `{{ environment.variables.${n} }}`)]));
}
