// The resource form, for "New resource" and "Edit" (loaded after app.js, yaml.js and form-kit.js):
// tabs General, Auth & Headers (a form per auth method), Advanced and Source (the same definition as
// YAML or JSON, editable). One plain object is the definition; every tab reads and writes it, so a
// change in one shows in the others. Secret fields name secret variables; the server's per-field
// errors are shown next to their fields, and the tab that holds the first one opens.
'use strict';

const authMethodChoices = [
  ['none', 'None'], ['bearer', 'Bearer token'], ['basic', 'Basic auth'], ['digest', 'Digest auth'], ['apiKey', 'API key'],
  ['awsSigV4', 'AWS Signature Version 4'], ['oauth1', 'OAuth 1.0a'], ['oauth2', 'OAuth 2.0'], ['githubApp', 'GitHub App'], ['custom', 'Custom login flow'],
];
const grantChoices = [
  ['client_credentials', 'Client credentials'], ['authorization_code', 'Authorization code (a person connects an account)'],
  ['refresh_token', 'Refresh token (tokens imported once)'], ['password', 'Password'],
  ['jwt_bearer', 'JWT bearer (a signed assertion; Google service accounts)'],
];
const resourceTabs = [['general', 'General'], ['auth', 'Auth & Headers'], ['advanced', 'Advanced'], ['source', 'Source']];

/** Which tab shows a field the server named. */
function tabOf(field) {
  if (/^(auth|headers|query)\b/.test(field)) return 'auth';
  if (/^(timeouts|maxResponseBytes|followRedirects|shareCredentials|authFailureStatuses|audit|tls)\b/.test(field)) return 'advanced';
  return 'general';
}

function withoutEmpty(value) {
  if (Array.isArray(value)) return value.filter((v) => v !== undefined && v !== null).map(withoutEmpty);
  if (value && typeof value === 'object') {
    const out = {};
    for (const [k, v] of Object.entries(value)) {
      if (v === undefined || v === null || v === '') continue;
      const clean = withoutEmpty(v);
      if (clean && typeof clean === 'object' && !Array.isArray(clean) && Object.keys(clean).length === 0) continue;
      out[k] = clean;
    }
    return out;
  }
  return value;
}

/**
 * The form. name: the resource's name when editing (null for a new one); definition: what GET returned;
 * onSaved(name, saved): after a successful PUT; onCancel: shown as a Cancel button when given.
 */
function resourceForm({ name, definition, onSaved, onCancel }) {
  const model = withoutEmpty(JSON.parse(JSON.stringify(definition || { kind: 'rest', auth: { type: 'none' } })));
  if (!model.auth) model.auth = { type: 'none' };
  const errors = new FieldErrors();
  let tab = 'general';
  let format = 'yaml';
  let catalog;
  const catalogReady = secretCatalog().then((c) => { catalog = c; }, () => { catalog = null; });
  const nameInput = h('input', { id: nextId('f'), name: 'name', required: true, placeholder: 'github', value: name || '', readonly: name ? true : null, class: 'mono', spellcheck: 'false' });
  const summary = h('div', { class: 'form-errors', role: 'alert' });
  const tabButtons = new Map();
  const panel = h('div', { class: 'tab-panel', role: 'tabpanel', tabindex: '0' });
  let source = null;
  let sourceError = null;

  const tablist = h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Resource settings' }, resourceTabs.map(([key, label], i) => {
    const button = h('button', {
      type: 'button', role: 'tab', id: nextId('tab'), class: 'tab', onclick: () => select(key),
      onkeydown: (e) => {
        const step = { ArrowRight: 1, ArrowLeft: -1, Home: -i, End: resourceTabs.length - 1 - i }[e.key];
        if (step === undefined) return;
        e.preventDefault();
        const next = resourceTabs[(i + step + resourceTabs.length) % resourceTabs.length][0];
        select(next);
        tabButtons.get(next).focus();
      },
    }, label);
    tabButtons.set(key, button);
    return button;
  }));

  /** Leaves the Source tab only with a document that parses: the text replaces the definition. */
  function takeSource() {
    if (tab !== 'source' || !source) return true;
    try {
      const parsed = yamlParse(source.value);
      if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new YamlError('the document must be a mapping of fields (kind, baseUrl, auth, …).');
      const { name: named, ...rest } = parsed;
      if (named && !name && !nameInput.value) nameInput.value = named;
      for (const key of Object.keys(model)) delete model[key];
      Object.assign(model, withoutEmpty(rest));
      if (!model.auth) model.auth = { type: 'none' };
      sourceError = null;
      return true;
    } catch (e) {
      sourceError = `The source is not valid ${format === 'json' && source.value.trim().startsWith('{') ? 'JSON' : 'YAML or JSON'}: ${e.message}`;
      draw();
      return false;
    }
  }

  function select(key) {
    if (key === tab) return;
    if (!takeSource()) return;
    tab = key;
    draw();
  }

  function draw() {
    for (const [key, button] of tabButtons) {
      button.setAttribute('aria-selected', String(key === tab));
      button.tabIndex = key === tab ? 0 : -1;
      button.setAttribute('aria-controls', panel.id || (panel.id = nextId('panel')));
      const count = [...errors.map.keys()].filter((f) => tabOf(f) === key).length;
      button.replaceChildren(...[resourceTabs.find(([k]) => k === key)[1], count ? h('span', { class: 'badge bad', 'aria-label': `${count} error${count === 1 ? '' : 's'}` }, String(count)) : ''].filter(Boolean));
    }
    panel.setAttribute('aria-labelledby', tabButtons.get(tab).id);
    const build = { general: generalTab, auth: authTab, advanced: advancedTab, source: sourceTab }[tab];
    panel.replaceChildren(...[build()].flat().filter(Boolean));
  }

  function generalTab() {
    return [
      wrapField(nameInput.id, 'name', 'Name', nameInput, { hint: name ? 'A resource keeps its name.' : 'Letters, digits, - and _; callers use it in /proxy/NAME.', errors }),
      bound(model, 'kind', 'Kind', { kind: 'select', choices: [['rest', 'REST'], ['graphql', 'GraphQL']], errors }),
      bound(model, 'baseUrl', 'Base URL', { placeholder: 'https://api.example.com/v1', errors, mono: true, hint: 'Every request goes under it; a template may name plain variables.' }),
      bound(model, 'description', 'Description', { placeholder: 'What this API is for', errors }),
    ];
  }

  function authTab() {
    const type = model.auth.type || 'none';
    const method = bound(model, 'auth.type', 'Auth method', {
      kind: 'select', choices: authMethodChoices, errors,
      onchange: (value) => {
        // Fields of another method would be refused ("does not apply"): a new method starts clean.
        model.auth = { type: value || 'none' };
        draw();
      },
    });
    const fields = { none: () => h('p', { class: 'hint' }, 'Keyway sends no credential; headers and query parameters below still apply.'), bearer: bearerFields, basic: basicFields, digest: digestFields, apiKey: apiKeyFields, awsSigV4: awsSigV4Fields, oauth1: oauth1Fields, oauth2: oauthFields, githubApp: gitHubAppFields, custom: () => customFlowEditor(model, errors, () => catalog) }[type];
    return [
      method,
      h('div', { class: 'auth-fields', id: 'auth-fields' }, fields ? fields() : h('p', { class: 'field-error' }, `'${type}' is not an auth method this form knows; edit it in Source.`)),
      pairRows(model, 'headers', 'Headers', { errors, hint: 'Sent with every request, e.g. Accept: application/json. A value may be a template.', keyPlaceholder: 'Accept', valuePlaceholder: 'application/json' }),
      pairRows(model, 'query', 'Query parameters', { errors, hint: 'Added to every request.', keyLabel: 'Name', keyPlaceholder: 'api-version', valuePlaceholder: '2024-01-01' }),
    ];
  }

  const secret = (path, label, options = {}) => secretPicker(model, path, label, { catalog, errors, origin: () => originOf(model.baseUrl), ...options });

  function bearerFields() {
    return [secret('auth.token', 'Token'), bound(model, 'auth.prefix', 'Scheme', { placeholder: 'Bearer', errors, hint: 'The word before the token in Authorization (default Bearer).' })];
  }

  function basicFields() {
    return [bound(model, 'auth.username', 'User name', { errors, mono: true }), secret('auth.password', 'Password')];
  }

  function digestFields() {
    return [
      bound(model, 'auth.username', 'User name', { errors, mono: true }),
      secret('auth.password', 'Password'),
      h('p', { class: 'hint' }, 'Keyway answers the server\'s Digest challenge (MD5 or SHA-256) and reuses its nonce, so only the first request costs a 401.'),
    ];
  }

  function oauth1Fields() {
    const rsa = model.auth.signatureMethod === 'RSA-SHA1';
    return [
      bound(model, 'auth.signatureMethod', 'Signature method', { kind: 'select', choices: [['', 'HMAC-SHA1'], ['HMAC-SHA256', 'HMAC-SHA256'], ['RSA-SHA1', 'RSA-SHA1 (a private key)']], errors,
        onchange: (value) => {
          // RSA-SHA1 signs with the key alone; HMAC with the two secrets: the other method's fields would be refused.
          if (value === 'RSA-SHA1') { delete model.auth.consumerSecret; delete model.auth.tokenSecret; } else delete model.auth.privateKey;
          draw();
        } }),
      bound(model, 'auth.consumerKey', 'Consumer key', { errors, mono: true, hint: 'Plain text, or a variable.' }),
      rsa ? secret('auth.privateKey', 'Private key (PEM)') : secret('auth.consumerSecret', 'Consumer secret'),
      bound(model, 'auth.token', 'Access token', { errors, mono: true, hint: 'Optional (two-legged OAuth has none). Plain text, or a variable.' }),
      rsa ? null : secret('auth.tokenSecret', 'Access token secret'),
      bound(model, 'auth.in', 'Parameters sent in', { kind: 'select', choices: [['', 'the Authorization header'], ['query', 'the query string']], errors }),
      bound(model, 'auth.realm', 'Realm', { errors, hint: 'Optional: the realm of the Authorization header, if the API wants one.' }),
    ];
  }

  function apiKeyFields() {
    return [
      bound(model, 'auth.in', 'Sent in', { kind: 'select', choices: [['', 'a header'], ['query', 'a query parameter'], ['cookie', 'a cookie']], errors }),
      bound(model, 'auth.name', 'Header, parameter or cookie name', { placeholder: 'X-API-Key', errors, mono: true }),
      secret('auth.value', 'Key'),
      bound(model, 'auth.prefix', 'Prefix', { errors, hint: 'Text put before the key, if the API wants one.' }),
    ];
  }

  function awsSigV4Fields() {
    return [
      bound(model, 'auth.accessKeyId', 'Access key ID', { errors, mono: true, placeholder: '{{ environment.variables.AWS_ACCESS_KEY_ID }}', hint: 'Plain text, or a variable.' }),
      secret('auth.secretAccessKey', 'Secret access key'),
      secret('auth.sessionToken', 'Session token (temporary credentials only)'),
      bound(model, 'auth.region', 'Region', { errors, mono: true, placeholder: 'us-east-1' }),
      bound(model, 'auth.service', 'Service', { errors, mono: true, placeholder: 'execute-api', hint: 's3, execute-api, sqs, dynamodb, lambda, …' }),
      bound(model, 'auth.unsignedPayload', 'Sign bodies as UNSIGNED-PAYLOAD (S3: large uploads stream)', { kind: 'check', errors }),
      h('details', { open: !!model.auth.assumeRole }, h('summary', {}, 'Assume a role (STS)'),
        h('p', { class: 'hint' }, 'The key above then signs only the AssumeRole request; the role\'s temporary credentials sign the rest, renewed before they expire.'),
        bound(model, 'auth.assumeRole.roleArn', 'Role ARN', { errors, mono: true, placeholder: 'arn:aws:iam::123456789012:role/keyway-reader' }),
        bound(model, 'auth.assumeRole.sessionName', 'Session name', { errors, mono: true, placeholder: 'keyway' }),
        bound(model, 'auth.assumeRole.externalId', 'External ID', { errors, mono: true, hint: 'If the role\'s trust policy asks for one.' }),
        bound(model, 'auth.assumeRole.durationSeconds', 'Duration (seconds)', { kind: 'number', errors, placeholder: '3600' }),
        bound(model, 'auth.assumeRole.stsUrl', 'STS URL', { errors, mono: true, placeholder: 'https://sts.REGION.amazonaws.com/' })),
    ];
  }

  /** Where a token goes instead of Authorization: Bearer (auth.apply, templates over credential). */
  function tokenApplyFields() {
    const hint = 'Templates over {{ credential.accessToken }}, {{ credential.tokenType }} and {{ credential.expiresAt }}; set any of these and the default header is not sent.';
    return h('details', { open: !!model.auth.apply }, h('summary', {}, 'Token anywhere'),
      h('p', { class: 'hint' }, hint),
      pairRows(model, 'auth.apply.headers', 'Token in headers', { errors, addLabel: 'Add header', keyPlaceholder: 'X-Access-Token', valuePlaceholder: '{{ credential.accessToken }}' }),
      pairRows(model, 'auth.apply.query', 'Token in query parameters', { errors, addLabel: 'Add query parameter', keyPlaceholder: 'access_token', valuePlaceholder: '{{ credential.accessToken }}' }),
      pairRows(model, 'auth.apply.body', 'Token in body fields', { errors, addLabel: 'Add body field', keyPlaceholder: 'token', valuePlaceholder: '{{ credential.accessToken }}' }));
  }

  function gitHubAppFields() {
    return [
      bound(model, 'auth.appId', 'App ID', { errors, mono: true, placeholder: '123456', hint: 'App settings → About.' }),
      bound(model, 'auth.installationId', 'Installation ID', { errors, mono: true, placeholder: '45678901', hint: 'The last part of the installation\'s settings URL.' }),
      secretPicker(model, 'auth.privateKey', 'Private key (.pem)', { catalog, errors, origin: () => originOf(model.auth.apiUrl) || 'https://api.github.com' }),
      bound(model, 'auth.apiUrl', 'API URL', { errors, mono: true, placeholder: 'https://api.github.com', hint: 'GitHub Enterprise Server: https://HOST/api/v3.' }),
      h('p', { class: 'hint' }, 'Keyway signs an app JWT and exchanges it for an installation token, renewed before its hour ends.'),
      tokenApplyFields(),
    ];
  }

  /** The key that signs (jwt_bearer, private_key_jwt) and, for the grant, the assertion's claims. */
  function signingFields(tokenOrigin, grant) {
    const google = grant === 'jwt_bearer' && model.auth.serviceAccountKey;
    return [
      grant === 'jwt_bearer' ? secretPicker(model, 'auth.serviceAccountKey', 'Google service account key file (JSON)', { catalog, errors, origin: tokenOrigin, hint: 'Or a PEM private key below.' }) : null,
      google ? null : secretPicker(model, 'auth.privateKey', 'Private key (PEM)', { catalog, errors, origin: tokenOrigin }),
      google ? null : bound(model, 'auth.keyId', 'Key ID (kid)', { errors, mono: true, hint: 'Optional: the id the provider knows the public key by.' }),
      google ? null : bound(model, 'auth.algorithm', 'Algorithm', { kind: 'select', choices: [['', "the key's (RS256 or ES256)"], ['RS256', 'RS256'], ['ES256', 'ES256']], errors }),
      grant === 'jwt_bearer' && !google ? bound(model, 'auth.assertion.issuer', 'Assertion issuer (iss)', { errors, mono: true }) : null,
      grant === 'jwt_bearer' ? bound(model, 'auth.assertion.subject', 'Assertion subject (sub)', { errors, mono: true, hint: 'Optional: whom the token is for.' }) : null,
      grant === 'jwt_bearer' && !google ? bound(model, 'auth.assertion.audience', 'Assertion audience (aud)', { errors, mono: true, hint: 'Default: the token URL.' }) : null,
    ];
  }

  function oauthFields() {
    const grant = model.auth.grant || 'client_credentials';
    const privateKeyJwt = model.auth.clientAuth === 'private_key_jwt';
    const mutualTls = ['tls_client_auth', 'self_signed_tls_client_auth'].includes(model.auth.clientAuth);
    const tokenOrigin = () => originOf(model.auth.tokenUrl) || originOf(model.auth.issuer);
    const callback = `${location.origin}/oauth/callback`;
    return [
      bound(model, 'auth.grant', 'Grant', { kind: 'select', choices: grantChoices, errors, onchange: () => draw() }),
      grant === 'authorization_code' ? copyable('Callback URL to register with the provider', callback, 'callback-url') : null,
      grant === 'authorization_code' ? h('p', { class: 'hint' }, 'Keyway answers the provider at this address (or at KEYWAY_PUBLIC_URL/oauth/callback when the server sets a public URL).') : null,
      bound(model, 'auth.issuer', 'Issuer (for discovery)', { placeholder: 'https://login.example.com', errors, mono: true, hint: 'Keyway reads /.well-known/openid-configuration; or give the endpoints below.' }),
      bound(model, 'auth.tokenUrl', 'Token URL', { placeholder: 'https://login.example.com/oauth/token', errors, mono: true }),
      grant === 'authorization_code' ? bound(model, 'auth.authorizeUrl', 'Authorization URL', { errors, mono: true }) : null,
      bound(model, 'auth.revocationUrl', 'Revocation URL', { errors, mono: true, hint: 'Used on Disconnect, when the provider offers one.' }),
      grant === 'jwt_bearer' ? signingFields(tokenOrigin, grant) : null,
      bound(model, 'auth.clientId', grant === 'jwt_bearer' ? 'Client ID (if the provider wants one)' : 'Client ID', { errors, mono: true }),
      privateKeyJwt || mutualTls ? null : secretPicker(model, 'auth.clientSecret', 'Client secret', { catalog, errors, origin: tokenOrigin }),
      bound(model, 'auth.clientAuth', 'Client authentication', {
        kind: 'select', errors, onchange: () => draw(),
        choices: [['', 'HTTP Basic (default)'], ['post', 'In the request body'], ...(grant === 'jwt_bearer' ? [] : [['private_key_jwt', 'A signed assertion (private_key_jwt)']]),
          ['tls_client_auth', 'The client certificate, from a CA (tls_client_auth)'], ['self_signed_tls_client_auth', 'The client certificate, self-signed (self_signed_tls_client_auth)']],
      }),
      mutualTls ? h('p', { class: 'hint' }, 'The token requests present the client certificate set in Advanced → Client certificate.') : null,
      bound(model, 'auth.certificateBoundTokens', 'The provider binds tokens to the client certificate (RFC 8705)', {
        kind: 'check', errors, hint: 'Token requests present the certificate set in Advanced, as every request does.',
      }),
      privateKeyJwt && grant !== 'jwt_bearer' ? signingFields(tokenOrigin, grant) : null,
      grant === 'password' ? bound(model, 'auth.username', 'User name', { errors, mono: true }) : null,
      grant === 'password' ? secretPicker(model, 'auth.password', 'Password', { catalog, errors, origin: tokenOrigin }) : null,
      bound(model, 'auth.scope', 'Scope', { errors, placeholder: 'read write' }),
      bound(model, 'auth.audience', 'Audience', { errors }),
      bound(model, 'auth.resourceIndicator', 'Resource indicator (RFC 8707)', { errors, mono: true }),
      pairRows(model, 'auth.extraParameters', 'Extra token parameters', { errors }),
      dpopFields(),
      grant === 'authorization_code' ? bound(model, 'shareCredentials', 'Each person connects their own account', { kind: 'check', invert: true, errors, hint: 'Unchecked: one account, connected once, is used by everyone.' }) : null,
      h('details', {}, h('summary', {}, 'Token placement and renewal'),
        bound(model, 'auth.in', 'Access token sent in', { kind: 'select', choices: [['', 'a header (default)'], ['query', 'a query parameter']], errors }),
        bound(model, 'auth.name', 'Header or parameter name', { errors, mono: true, placeholder: 'Authorization' }),
        bound(model, 'auth.prefix', 'Scheme', { errors, placeholder: 'Bearer' }),
        bound(model, 'auth.lifetimeSeconds', 'Token lifetime when the provider does not say (seconds)', { kind: 'number', errors }),
        bound(model, 'auth.keepAliveSeconds', 'Refresh at least every (seconds)', { kind: 'number', errors, hint: 'For providers that expire idle refresh tokens; at least 60.' }),
        bound(model, 'auth.refreshSchedule', 'Refresh on a schedule (cron, UTC)', { errors, mono: true, placeholder: '0 3 * * *' })),
      tokenApplyFields(),
    ];
  }

  /**
   * DPoP (auth.dpop): true, or { algorithm } for another algorithm than ES256. A checkbox, and the algorithm once it is on;
   * the definition keeps the short form (true) while the algorithm is the default.
   */
  function dpopFields() {
    const current = getAt(model, 'auth.dpop');
    const on = current === true || (current !== null && typeof current === 'object');
    const id = nextId('f');
    const box = h('input', { id, name: 'auth.dpop', type: 'checkbox', checked: on });
    box.addEventListener('change', () => { setAt(model, 'auth.dpop', box.checked ? true : undefined); draw(); });
    const check = wrapField(id, 'auth.dpop', 'Bind tokens to a key Keyway holds (DPoP, RFC 9449)', box, {
      check: true, errors, hint: 'Each credential gets its own key pair, kept encrypted and never shown; every request carries a proof. The provider must issue DPoP tokens to this client.',
    });
    if (!on) return check;
    const algorithmId = nextId('f');
    const algorithm = (typeof current === 'object' && current.algorithm) || '';
    const select = h('select', { id: algorithmId, name: 'auth.dpop.algorithm' },
      [['', 'ES256 (default)'], ['RS256', 'RS256'], ['PS256', 'PS256']].map(([v, text]) => h('option', { value: v, selected: algorithm === v }, text)));
    select.addEventListener('change', () => setAt(model, 'auth.dpop', select.value ? { algorithm: select.value } : true));
    return [check, wrapField(algorithmId, 'auth.dpop.algorithm', 'DPoP proof algorithm', select, { errors })];
  }

  function advancedTab() {
    return [
      bound(model, 'timeouts.requestMs', 'Request timeout (ms)', { kind: 'number', errors, placeholder: '30000' }),
      bound(model, 'maxResponseBytes', 'Largest answer a run accepts (bytes)', { kind: 'number', errors, placeholder: '10485760' }),
      bound(model, 'followRedirects', 'Redirects', { kind: 'select', choices: [['', 'never followed (default)'], ['sameOrigin', 'followed within the same origin']], errors }),
      bound(model, 'authFailureStatuses', 'Statuses that mean the credential was rejected', { kind: 'numbers', errors, placeholder: '401', hint: 'Keyway renews the credential once and retries. Comma-separated.' }),
      bound(model, 'audit.traffic', 'Traffic in the audit log', {
        kind: 'select', errors,
        choices: [['', "the server's default"], ['rollup', 'counts per interval'], ['each', 'one event per request'], ['off', 'none (only for a resource that sends no secret)']],
      }),
      ['oauth2', 'custom'].includes(model.auth.type) && model.auth.grant !== 'authorization_code'
        ? bound(model, 'shareCredentials', 'Each person has their own credential', { kind: 'check', invert: true, errors })
        : null,
      tlsFields(),
    ];
  }

  /** The client certificate the connections present (mutual TLS), and a private CA. */
  function tlsFields() {
    const tls = model.tls || {};
    const pkcs12 = !!tls.pkcs12;
    return h('details', { open: !!model.tls }, h('summary', {}, 'Client certificate (mutual TLS)'),
      h('p', { class: 'hint' }, 'For an API that asks for a client certificate: PEM (certificate, then its key) or a PKCS#12 file, each in a variable. The key and password must be secret.'),
      pkcs12 ? null : secret('tls.clientCertificate', 'Client certificate (PEM; its chain may follow)', { hint: 'A plain or secret variable; the key may follow it in the same PEM.' }),
      pkcs12 ? null : secret('tls.clientKey', 'Private key (PEM)', { hint: 'Unencrypted. Leave empty when the certificate\'s PEM holds it.' }),
      tls.clientCertificate ? null : secret('tls.pkcs12', 'Or a PKCS#12 file (.p12/.pfx, base64)', { hint: 'base64 -w0 client.p12' }),
      tls.clientCertificate ? null : secret('tls.pkcs12Password', 'PKCS#12 password'),
      bound(model, 'tls.caCertificate', 'CA certificate of the server (PEM)', {
        errors, mono: true, placeholder: '{{ environment.variables.INTERNAL_CA }}', hint: 'Only for a server whose certificate a private CA issued: then only this CA is trusted.',
      }));
  }

  function sourceTab() {
    const text = format === 'json' ? JSON.stringify(withoutEmpty(model), null, 2) + '\n' : yamlStringify(withoutEmpty(model));
    const fresh = h('textarea', { name: 'source', id: nextId('f'), rows: 20, spellcheck: 'false', 'aria-describedby': 'source-hint' }, source && sourceError ? source.value : text);
    source = fresh;
    const choose = (f) => h('label', { class: 'check' }, h('input', {
      type: 'radio', name: 'source-format', value: f, checked: format === f, onchange: () => {
        if (!takeSource()) return;
        format = f;
        draw();
      },
    }), f.toUpperCase());
    return [
      h('div', { class: 'row', role: 'radiogroup', 'aria-label': 'Source format' }, choose('yaml'), choose('json')),
      h('label', { for: fresh.id }, 'Definition'),
      fresh,
      h('p', { class: 'hint', id: 'source-hint' }, 'Paste YAML or JSON (what keyway resource get prints, or a file for keyway resource apply FILE). The other tabs show what it says.'),
      sourceError ? h('p', { class: 'field-error', role: 'alert' }, sourceError) : null,
      errors.map.size ? h('ul', { class: 'field-error' }, [...errors.map].map(([f, m]) => h('li', {}, `${f}: ${m}`))) : null,
    ];
  }

  function showErrors(problem) {
    errors.set(Array.isArray(problem.errors) ? problem.errors : []);
    summary.replaceChildren(h('p', {}, problem.detail || problem.title || 'The server refused the resource.'),
      errors.map.size ? h('ul', {}, [...errors.map].map(([f, m]) => h('li', {}, h('button', {
        type: 'button', class: 'link', onclick: () => { select(tabOf(f)); focusField(f); },
      }, f), `: ${m}`))) : null);
    // The tab in view if it has an error, else the first tab that has one.
    const fields = [...errors.map.keys()];
    if (fields.length && tab !== 'source' && !fields.some((f) => tabOf(f) === tab)) {
      tab = resourceTabs.map(([key]) => key).find((key) => fields.some((f) => tabOf(f) === key));
    }
    draw();
    const first = fields.find((f) => tabOf(f) === tab);
    if (first && tab !== 'source') focusField(first);
  }

  function focusField(field) {
    for (let f = field; f; f = f.replace(/(\.[^.[]*|\[\d+\])$/, '')) {
      const el = panel.querySelector(`[data-field="${CSS.escape(f)}"]`);
      if (el) {
        const control = el.querySelector('input, select, textarea, button');
        if (control) control.focus();
        return;
      }
      if (!/[.[]/.test(f)) break;
    }
  }

  const form = h('form', {
    class: 'stack resource-form', id: 'resource-form', novalidate: true, onsubmit: onSubmit(async () => {
      if (!takeSource()) return;
      const target = (name || nameInput.value).trim();
      if (!target) {
        showErrors({ detail: 'Name the resource.', errors: [{ field: 'name', message: 'Name the resource: letters, digits, - and _.' }] });
        return;
      }
      errors.clear();
      summary.replaceChildren();
      try {
        const saved = await api('PUT', '/resources/' + encodeURIComponent(target), withoutEmpty(model));
        await onSaved(target, saved);
      } catch (error) {
        if (!(error instanceof ApiError) || error.status === 401) throw error;
        showErrors({ ...error.problem, detail: describe(error) });
      }
    }),
  }, summary, tablist, panel,
  h('div', { class: 'row' }, h('button', { type: 'submit' }, name ? 'Save' : 'Create resource'),
    onCancel ? h('button', { type: 'button', class: 'secondary', onclick: onCancel }, 'Cancel') : null));
  // The secret lists arrive after the first draw; the tab that shows secret pickers is drawn again then.
  catalogReady.then(() => { if (tab === 'auth' || tab === 'advanced') draw(); });
  draw();
  return form;
}
