// An upstream that refuses every request whose OAuth 1.0a signature is not right (RFC 5849), as an API would.
// The base string is the oauth-1.0a package's (it shares nothing with Keyway's code); HMAC-SHA1 and HMAC-SHA256
// are computed and RSA-SHA1 verified with node's crypto and the public key.
// Configuration from the environment: CONSUMER_KEY, CONSUMER_SECRET, TOKEN, TOKEN_SECRET, PUBLIC_KEY (PEM).
// Prints "listening PORT" once it listens on 127.0.0.1; answers 200 with what it verified, or 401 with why not.
import http from 'node:http';
import crypto from 'node:crypto';
import OAuth from 'oauth-1.0a';

const env = process.env;
const seen = new Set();

function hmac(algorithm) {
  return (base, key) => crypto.createHmac(algorithm, key).update(base).digest('base64');
}

function parseHeader(value) {
  const params = {};
  const text = value.replace(/^OAuth\s+/i, '');
  for (const match of text.matchAll(/([A-Za-z0-9_]+)="([^"]*)"/g)) {
    params[decodeURIComponent(match[1])] = decodeURIComponent(match[2]);
  }
  return params;
}

function verify(req, body) {
  const full = new URL(req.url, `http://${req.headers.host}`);
  let protocol;
  const auth = req.headers.authorization ?? '';
  if (/^OAuth /i.test(auth)) {
    protocol = parseHeader(auth);
  } else {
    protocol = {};
    for (const [name, value] of full.searchParams) if (name.startsWith('oauth_')) protocol[name] = value;
  }
  // The URL as signed: without the protocol parameters when they came in the query.
  const query = req.url.includes('?') ? req.url.slice(req.url.indexOf('?') + 1).split('&').filter((p) => !p.startsWith('oauth_')).join('&') : '';
  const url = `http://${req.headers.host}${full.pathname}${query ? '?' + query : ''}`;
  const signature = protocol.oauth_signature;
  if (!signature) return 'no oauth_signature';
  if (protocol.oauth_consumer_key !== env.CONSUMER_KEY) return 'wrong consumer key';
  if ((env.TOKEN ?? '') !== (protocol.oauth_token ?? '')) return 'wrong token';
  if (protocol.oauth_version !== undefined && protocol.oauth_version !== '1.0') return 'wrong version';
  const age = Math.abs(Date.now() / 1000 - Number(protocol.oauth_timestamp));
  if (!(age < 300)) return 'timestamp too far from now';
  if (seen.has(protocol.oauth_nonce)) return 'nonce replayed';

  const method = protocol.oauth_signature_method;
  const oauth = new OAuth({
    consumer: { key: env.CONSUMER_KEY, secret: env.CONSUMER_SECRET ?? '' },
    signature_method: method,
    hash_function: method === 'HMAC-SHA256' ? hmac('sha256') : hmac('sha1'),
  });
  const data = {};
  if ((req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase() === 'application/x-www-form-urlencoded') {
    for (const [name, value] of new URLSearchParams(body)) data[name] = value;
  }
  const oauthData = {};
  for (const [name, value] of Object.entries(protocol)) {
    if (name.startsWith('oauth_') && name !== 'oauth_signature') oauthData[name] = value;
  }
  const request = { url, method: req.method, data };
  if (method === 'RSA-SHA1') {
    const base = oauth.getBaseString(request, { ...oauthData });
    if (!crypto.verify('RSA-SHA1', Buffer.from(base), env.PUBLIC_KEY, Buffer.from(signature, 'base64'))) return 'RSA-SHA1 signature does not verify';
  } else if (method === 'HMAC-SHA1' || method === 'HMAC-SHA256') {
    const expected = oauth.getSignature(request, env.TOKEN_SECRET, { ...oauthData });
    if (expected !== signature) return `${method} signature mismatch`;
  } else {
    return `unknown signature method ${method}`;
  }
  seen.add(protocol.oauth_nonce);
  return null;
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    const error = verify(req, body);
    res.writeHead(error ? 401 : 200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(error ? { error } : { ok: true, method: req.method, url: req.url, body }));
  });
});
server.listen(0, '127.0.0.1', () => console.log(`listening ${server.address().port}`));
process.stdin.on('end', () => server.close(() => process.exit(0)));
process.stdin.resume();
