// Runs the Worker locally in workerd (Miniflare) for tests and benchmarks. Settings come
// from the environment (EDGE_ORIGIN_URL, EDGE_ORIGIN_TOKEN, EDGE_API_TOKENS, EDGE_CACHE_TTL,
// EDGE_RATE_PER_SECOND, EDGE_RATE_BURST, EDGE_VERSION_TTL, EDGE_PORT); prints
// "listening <url>" once ready and runs until stdin closes or it is signalled.
import { Miniflare } from "miniflare";
import { fileURLToPath } from "node:url";

const env = process.env;
const mf = new Miniflare({
  modules: true,
  scriptPath: fileURLToPath(new URL("./src/worker.js", import.meta.url)),
  compatibilityDate: "2026-04-01",
  host: "127.0.0.1",
  port: Number(env.EDGE_PORT || 0),
  bindings: {
    ORIGIN_URL: env.EDGE_ORIGIN_URL,
    ORIGIN_TOKEN: env.EDGE_ORIGIN_TOKEN || "",
    API_TOKENS: env.EDGE_API_TOKENS || "",
    CACHE_TTL_SECONDS: env.EDGE_CACHE_TTL || "300",
    RATE_PER_SECOND: env.EDGE_RATE_PER_SECOND || "10",
    RATE_BURST: env.EDGE_RATE_BURST || "20",
    VERSION_TTL_SECONDS: env.EDGE_VERSION_TTL || "2",
  },
  durableObjects: { RATE_LIMITER: "RateLimiter" },
  cache: true,
});
const url = await mf.ready;
console.log(`listening ${url.href.replace(/\/$/, "")}`);

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  await mf.dispose();
  process.exit(0);
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
process.stdin.on("end", stop);
process.stdin.resume();
