// ragrec edge: a Cloudflare Worker in front of the model endpoint (the project's model server
// or PAI-EAS). It proxies the embedding and rerank routes and
//   * rejects callers without a valid API token (401) before anything reaches the origin;
//   * rate-limits each token with a token bucket in a Durable Object (429 + Retry-After);
//   * caches successful answers under SHA-256(route, model version, normalised body) for
//     CACHE_TTL_SECONDS, never errors, never admin routes; a model swap changes the key;
//   * adds the origin's EAS token itself (clients never hold it);
//   * returns the model version in X-Model-Version (and X-Cache: HIT | MISS | BYPASS).
//
// Bindings (wrangler.toml / secrets): ORIGIN_URL, ORIGIN_TOKEN (secret), ORIGIN_AUTH_SCHEME
// ("eas": bare token, or "bearer"), API_TOKENS (secret, comma-separated), CACHE_TTL_SECONDS,
// RATE_PER_SECOND, RATE_BURST, VERSION_TTL_SECONDS, MODEL_VERSION (optional pin),
// RATE_LIMITER (Durable Object namespace).

const CACHED_ROUTES = [/^\/v1\/embeddings$/, /^\/v1\/rerank$/, /^\/api\/predict\/[^/]+$/];
const ADMIN_ROUTES = /^\/admin\//;
const MAX_BODY_BYTES = 1024 * 1024;

let versionMemo = { value: null, at: 0 };

function json(status, payload, headers = {}) {
  return new Response(JSON.stringify(payload), {
    status,
    headers: { "Content-Type": "application/json", ...headers },
  });
}

function error(status, message, headers = {}) {
  return json(status, { error: { code: status, message } }, headers);
}

function callerToken(request) {
  const given = request.headers.get("Authorization") || "";
  return given.toLowerCase().startsWith("bearer ") ? given.slice(7).trim() : given.trim();
}

function validTokens(env) {
  return (env.API_TOKENS || "").split(",").map((t) => t.trim()).filter(Boolean);
}

// Constant-time comparison of two strings (length leaks, content does not).
function sameString(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

// JSON with sorted object keys: requests that differ only in key order or whitespace share
// one cache entry; array order (the texts) is kept.
function canonical(value) {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value && typeof value === "object") {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

async function sha256(text) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function originRequest(env, path, init = {}) {
  const headers = new Headers(init.headers || {});
  if (env.ORIGIN_TOKEN && !headers.has("Authorization")) {
    // PAI-EAS takes the bare token; the project's model server takes either form.
    headers.set("Authorization", env.ORIGIN_AUTH_SCHEME === "bearer"
      ? `Bearer ${env.ORIGIN_TOKEN}` : env.ORIGIN_TOKEN);
  }
  return fetch(env.ORIGIN_URL.replace(/\/$/, "") + path, { ...init, headers });
}

// The model version the origin serves now: MODEL_VERSION when the deployment pins it (an
// origin without /health), else the origin's /health, memoised for VERSION_TTL_SECONDS.
async function modelVersion(env) {
  if (env.MODEL_VERSION) return env.MODEL_VERSION;
  const ttl = Number(env.VERSION_TTL_SECONDS ?? 2) * 1000;
  const now = Date.now();
  if (versionMemo.value && now - versionMemo.at < ttl) return versionMemo.value;
  const response = await originRequest(env, "/health", { method: "GET" });
  if (!response.ok) throw new Error(`origin /health answered ${response.status}`);
  const health = await response.json();
  versionMemo = { value: String(health.version), at: now };
  return versionMemo.value;
}

async function rateLimit(env, token) {
  const id = env.RATE_LIMITER.idFromName(await sha256(token));
  const answer = await env.RATE_LIMITER.get(id).fetch("https://rate-limiter/take", {
    method: "POST",
    body: JSON.stringify({ rate: Number(env.RATE_PER_SECOND || 10), burst: Number(env.RATE_BURST || 20) }),
  });
  return answer.json();
}

export class RateLimiter {
  constructor(state) {
    this.state = state;
  }

  async fetch(request) {
    const { rate, burst } = await request.json();
    const now = Date.now() / 1000;
    const bucket = (await this.state.storage.get("bucket")) || { tokens: burst, at: now };
    const tokens = Math.min(burst, bucket.tokens + (now - bucket.at) * rate);
    if (tokens >= 1) {
      await this.state.storage.put("bucket", { tokens: tokens - 1, at: now });
      return json(200, { allowed: true, remaining: Math.floor(tokens - 1) });
    }
    await this.state.storage.put("bucket", { tokens, at: now });
    return json(200, { allowed: false, retryAfter: Math.max(1, Math.ceil((1 - tokens) / rate)) });
  }
}

async function proxyAdmin(request, env, url) {
  const response = await fetch(env.ORIGIN_URL.replace(/\/$/, "") + url.pathname + url.search, {
    method: request.method,
    headers: request.headers,
    body: request.method === "GET" ? undefined : await request.arrayBuffer(),
  });
  versionMemo = { value: null, at: 0 }; // a swap may have happened
  const out = new Response(response.body, response);
  out.headers.set("X-Cache", "BYPASS");
  return out;
}

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    // Admin calls (model swaps) go straight through, uncached: the origin checks the
    // caller's admin credential itself.
    if (ADMIN_ROUTES.test(url.pathname)) return proxyAdmin(request, env, url);
    const token = callerToken(request);
    const tokens = validTokens(env);
    if (!token || !tokens.some((t) => sameString(t, token))) {
      return error(401, "missing or invalid API token", { "WWW-Authenticate": "Bearer" });
    }
    const verdict = await rateLimit(env, token);
    if (!verdict.allowed) {
      return error(429, "rate limit exceeded for this token",
                   { "Retry-After": String(verdict.retryAfter) });
    }
    if (request.method !== "POST" || !CACHED_ROUTES.some((r) => r.test(url.pathname))) {
      return error(404, `no route ${request.method} ${url.pathname} at the edge`);
    }
    const raw = await request.text();
    if (raw.length > MAX_BODY_BYTES) return error(413, "request body too large");
    let body;
    try {
      body = JSON.parse(raw);
    } catch {
      return error(400, "request body is not JSON");
    }
    let version;
    try {
      version = await modelVersion(env);
    } catch (e) {
      return error(502, `model endpoint unavailable: ${e.message}`);
    }
    const key = await sha256(`${url.pathname}\n${version}\n${canonical(body)}`);
    const cacheKey = new Request(`https://edge-cache.internal/${key}`);
    const cache = caches.default;
    const hit = await cache.match(cacheKey);
    if (hit) {
      const out = new Response(hit.body, hit);
      out.headers.set("X-Cache", "HIT");
      return out;
    }
    let response;
    try {
      response = await originRequest(env, url.pathname, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: raw,
      });
    } catch (e) {
      return error(502, `model endpoint unreachable: ${e.message}`);
    }
    const served = response.headers.get("X-Model-Version") || version;
    const out = new Response(response.body, response);
    out.headers.set("X-Model-Version", served);
    out.headers.set("X-Cache", "MISS");
    if (response.status === 200 && served === version) {
      const ttl = Number(env.CACHE_TTL_SECONDS || 300);
      const stored = out.clone();
      stored.headers.set("Cache-Control", `max-age=${ttl}`);
      ctx.waitUntil(cache.put(cacheKey, stored));
    } else if (served !== version) {
      versionMemo = { value: null, at: 0 }; // the origin moved on: look again next time
    }
    return out;
  },
};
