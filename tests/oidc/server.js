// A real OpenID provider (node-oidc-provider) on loopback for oO's sign-in tests.
//
// Configured by the environment so the pytest fixture decides everything:
//   OIDC_PORT           port to listen on (127.0.0.1)
//   OIDC_CLIENT_ID      the one registered client
//   OIDC_CLIENT_SECRET  its secret (client_secret_basic at the token endpoint)
//   OIDC_REDIRECT_URIS  comma-separated redirect URIs registered for the client
//
// Login is a form with a single "login" field: whatever name is typed becomes the subject, and
// its email is <login>@example.test (or the login itself when it contains "@"). There is no
// password anywhere. Consent is granted by the provider itself (oO is a first-party client).
import { generateKeyPairSync, randomBytes } from "node:crypto";
import http from "node:http";

import Provider from "oidc-provider";

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`${name} must be set`);
    process.exit(2);
  }
  return value;
}

const port = Number(required("OIDC_PORT"));
const issuer = `http://127.0.0.1:${port}`;
const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: "jwk" }), kid: "test-rs256", use: "sig" };

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: required("OIDC_CLIENT_ID"),
      client_secret: required("OIDC_CLIENT_SECRET"),
      redirect_uris: required("OIDC_REDIRECT_URIS").split(","),
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
    },
  ],
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString("hex")] },
  claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["name"] },
  // Every client must use PKCE, so a client that forgets it fails the tests.
  pkce: { required: () => true },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        const email = id.includes("@") ? id : `${id}@example.test`;
        return { sub: id, email, email_verified: true, name: id };
      },
    };
  },
});

function escape(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function loginPage(res, uid, status = 200) {
  res.writeHead(status, { "content-type": "text/html; charset=utf-8" });
  res.end(
    `<!doctype html><title>Sign in</title>` +
      `<form method="post" action="/interaction/${escape(uid)}/login">` +
      `<label>Login <input name="login" required autofocus></label>` +
      `<button type="submit">Sign in</button></form>`,
  );
}

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString("utf8"));
}

async function grantConsent(req, res, details) {
  const { prompt, params, session, grantId } = details;
  const grant = grantId
    ? await provider.Grant.find(grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  const missing = prompt.details;
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(" "));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(" "));
  }
  const saved = await grant.save();
  await provider.interactionFinished(
    req,
    res,
    { consent: { grantId: saved } },
    { mergeWithLastSubmission: true },
  );
}

async function interaction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) {
    res.writeHead(400).end("interaction mismatch");
    return;
  }
  if (action === "login" && req.method === "POST") {
    const login = ((await readForm(req)).get("login") ?? "").trim();
    if (!login) return loginPage(res, uid, 400);
    await provider.interactionFinished(
      req,
      res,
      { login: { accountId: login } },
      { mergeWithLastSubmission: false },
    );
    return;
  }
  if (details.prompt.name === "login") return loginPage(res, uid);
  if (details.prompt.name === "consent") return grantConsent(req, res, details);
  res.writeHead(400).end(`unsupported prompt ${details.prompt.name}`);
}

const callback = provider.callback();
const server = http.createServer((req, res) => {
  const match = /^\/interaction\/([\w-]+)(?:\/(login))?$/.exec(req.url.split("?")[0]);
  if (!match) return callback(req, res);
  interaction(req, res, match[1], match[2]).catch((error) => {
    if (!res.headersSent) res.writeHead(400, { "content-type": "text/plain" });
    res.end(`${error.name}: ${error.message}`);
  });
});

server.listen(port, "127.0.0.1", () => console.log(`listening ${issuer}`));
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => server.close(() => process.exit(0)));
