// An authorization server and a resource server that enforce DPoP (RFC 9449), independent of Keyway:
// - the authorization server is oidc-provider (features.dPoP; nonces with features.dPoP.nonceSecret and
//   requireNonce), with one client_credentials client whose access tokens must be DPoP-bound;
// - the resource server, on a port of its own, checks every request's proof with jose: the signature
//   with the proof's jwk, typ, htm and htu, ath against the token, iat, a jti never seen before, the
//   key's thumbprint against the token's binding (cnf.jkt, from the provider's own record of the
//   token) and, when asked to, a nonce of its own.
// Control: POST /control on the resource server with {"asNonce": bool, "rsNonce": bool};
// GET /stats there reports what both servers saw. Prints one JSON line {"ready": true} when listening.
import crypto from "node:crypto";
import http from "node:http";
import * as jose from "jose";
import Provider from "oidc-provider";

const asPort = Number(process.env.AS_PORT);
const rsPort = Number(process.env.RS_PORT);
const clientSecret = process.env.CLIENT_SECRET ?? "dpop-client-secret";
const issuer = `http://127.0.0.1:${asPort}`;
const resourceOrigin = `http://127.0.0.1:${rsPort}`;

const state = {
  asNonce: false,
  rsNonce: false,
  rsNonceValue: crypto.randomBytes(16).toString("base64url"),
  tokenRequests: 0,
  tokenNonceChallenges: 0,
  tokensIssued: 0,
  resourceRequests: 0,
  resourceNonceChallenges: 0,
  accepted: 0,
  refused: [],
  thumbprints: [],
  seenJti: new Set(),
};

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: "keyway",
      client_secret: clientSecret,
      grant_types: ["client_credentials"],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: "client_secret_basic",
      // Every access token of this client must be bound to a key: a request without a proof is refused.
      dpop_bound_access_tokens: true,
    },
  ],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    dPoP: {
      enabled: true,
      nonceSecret: crypto.randomBytes(32),
      requireNonce: () => state.asNonce,
    },
  },
  ttl: { ClientCredentials: 600 },
});
provider.proxy = false;

provider.on("grant.success", () => {
  state.tokensIssued++;
});

const asServer = http.createServer((req, res) => {
  if (req.url?.startsWith("/token")) {
    state.tokenRequests++;
    res.on("finish", () => {
      if (res.statusCode === 400 && res.getHeader("dpop-nonce")) state.tokenNonceChallenges++;
    });
  }
  provider.callback()(req, res);
});

function sha256url(text) {
  return crypto.createHash("sha256").update(text, "ascii").digest("base64url");
}

function refuse(res, status, error, description, extraHeaders = {}) {
  state.refused.push({ error, description });
  res.writeHead(status, {
    "content-type": "application/json",
    "www-authenticate": `DPoP algs="ES256 RS256 PS256", error="${error}", error_description="${description}"`,
    ...extraHeaders,
  });
  res.end(JSON.stringify({ error, error_description: description }));
}

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}

async function resource(req, res) {
  const url = new URL(req.url, resourceOrigin);
  if (url.pathname === "/control" && req.method === "POST") {
    Object.assign(state, JSON.parse(await readBody(req)));
    res.writeHead(204).end();
    return;
  }
  if (url.pathname === "/stats") {
    const { seenJti, ...rest } = state;
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ ...rest, seenJti: seenJti.size }));
    return;
  }

  state.resourceRequests++;
  const body = await readBody(req);
  const authorization = req.headers.authorization ?? "";
  if (!authorization.startsWith("DPoP ")) return refuse(res, 401, "invalid_token", "the token must come as Authorization: DPoP");
  const token = authorization.slice(5);
  const proof = req.headers.dpop;
  if (typeof proof !== "string") return refuse(res, 401, "invalid_dpop_proof", "no DPoP proof");

  let header, payload;
  try {
    header = jose.decodeProtectedHeader(proof);
    if (!header.jwk || header.jwk.d || header.jwk.p) throw new Error("the jwk must be a public key");
    const key = await jose.importJWK(header.jwk, header.alg);
    ({ payload } = await jose.jwtVerify(proof, key, {
      typ: "dpop+jwt",
      algorithms: ["ES256", "RS256", "PS256"],
      maxTokenAge: "60s",
      clockTolerance: 5,
      requiredClaims: ["jti", "htm", "htu", "iat"],
    }));
  } catch (e) {
    return refuse(res, 401, "invalid_dpop_proof", String(e.message ?? e));
  }

  if (payload.htm !== req.method) return refuse(res, 401, "invalid_dpop_proof", `htm ${payload.htm} is not ${req.method}`);
  if (payload.htu !== `${resourceOrigin}${url.pathname}`) return refuse(res, 401, "invalid_dpop_proof", `htu ${payload.htu} is not this URL`);
  if (payload.ath !== sha256url(token)) return refuse(res, 401, "invalid_dpop_proof", "ath is not the hash of the token");
  if (state.seenJti.has(payload.jti)) return refuse(res, 401, "invalid_dpop_proof", "the proof's jti was used before");
  state.seenJti.add(payload.jti);
  if (state.rsNonce && payload.nonce !== state.rsNonceValue) {
    state.resourceNonceChallenges++;
    return refuse(res, 401, "use_dpop_nonce", "a nonce is required", { "dpop-nonce": state.rsNonceValue });
  }

  const accessToken = await provider.ClientCredentials.find(token);
  if (!accessToken || accessToken.isExpired) return refuse(res, 401, "invalid_token", "unknown or expired token");
  const thumbprint = await jose.calculateJwkThumbprint(header.jwk, "sha256");
  if (accessToken.jkt !== thumbprint) return refuse(res, 401, "invalid_token", "the token is bound to another key");

  state.accepted++;
  state.thumbprints.push(thumbprint);
  res.writeHead(200, { "content-type": "application/json" });
  res.end(JSON.stringify({ ok: true, method: req.method, path: url.pathname, jkt: thumbprint, bodyLength: body.length }));
}

const rsServer = http.createServer((req, res) => {
  resource(req, res).catch((e) => {
    res.writeHead(500, { "content-type": "text/plain" }).end(String(e.stack ?? e));
  });
});

await new Promise((resolve) => asServer.listen(asPort, "127.0.0.1", resolve));
await new Promise((resolve) => rsServer.listen(rsPort, "127.0.0.1", resolve));
process.stdout.write(JSON.stringify({ ready: true, issuer, resource: resourceOrigin }) + "\n");
