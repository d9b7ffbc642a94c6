// Real processes for the client's tests: the exchange simulator and pledge-ws (gunicorn with the
// gevent worker), both from the checkout's .venv (or PLEDGE_WS_PYTHON), on free loopback ports.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createServer } from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const PYTHON = process.env.PLEDGE_WS_PYTHON || path.join(ROOT, ".venv", "bin", "python");
const BIN = path.dirname(PYTHON);

export async function freePort() {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address();
  server.close();
  return port;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Poll `check` until it returns something truthy, at most `timeout` ms. */
export async function waitFor(check, timeout = 10000, what = "condition") {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      last = err;
    }
    await sleep(50);
  }
  throw new Error(`timed out after ${timeout} ms waiting for ${what}${last ? ` (last error: ${last})` : ""}`);
}

async function http(method, url, body) {
  const response = await fetch(url, {
    method,
    headers: { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: await response.json().catch(() => null) };
}

function start(argv, env) {
  const child = spawn(argv[0], argv.slice(1), { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  child.stdout.on("data", (chunk) => (log += chunk));
  child.stderr.on("data", (chunk) => (log += chunk));
  child.log = () => log;
  return child;
}

async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 10000);
  await once(child, "exit");
  clearTimeout(timer);
}

/** The simulator (no random ticks: the tests set every price) and one pledge-ws worker on it. */
export async function startStack(env = {}) {
  const simPort = await freePort();
  const sim = start([path.join(BIN, "pledge-ws-simulator"), "--port", String(simPort), "--rate", "0",
    "--ping-interval-ms", "1000", "--ping-timeout-ms", "1000"]);
  const simUrl = `http://127.0.0.1:${simPort}`;
  await waitFor(() => sim.log().includes("listening"), 15000, "the simulator to listen");
  const port = await freePort();
  const service = start([path.join(BIN, "gunicorn"), "-c", "gunicorn.conf.py", "app:app"], {
    PORT: String(port),
    KUCOIN_API_URL: simUrl,
    SYMBOLS: "PLGR-USDT,BTC-USDT",
    REST_FALLBACK_INTERVAL: "0",
    ...env,
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => (await http("GET", `${url}/readyz`)).status === 200, 20000, "pledge-ws to be ready");
  return {
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    url,
    /** Set a price at the exchange and wait until the service serves it; the exchange's tick. */
    async setPrice(symbol, price) {
      const { body } = await http("POST", `${simUrl}/_sim/price`, { symbol, price });
      await waitFor(async () => (await http("GET", `${url}/price?symbol=${symbol}`)).body?.price === price, 5000,
        `${symbol} ${price} at the service`);
      return body;
    },
    async sim(op, body = {}) {
      return (await http("POST", `${simUrl}/_sim/${op}`, body)).body;
    },
    async metric(name) {
      const text = await (await fetch(`${url}/metrics`)).text();
      const line = text.split("\n").find((l) => l.startsWith(name + " "));
      return line ? Number(line.split(" ").pop()) : 0;
    },
    async stop() {
      await stop(service);
      await stop(sim);
    },
  };
}

/** Every event a client emits, in order, for assertions; `next(event, match)` waits for one. */
export function record(client, events = ["price", "state", "open", "error", "recovery", "close"]) {
  const seen = [];
  const waiters = [];
  for (const event of events) {
    client.on(event, (...args) => {
      seen.push({ event, args });
      for (const waiter of [...waiters]) {
        if (waiter.event === event && waiter.match(...args)) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve(args[0]);
        }
      }
    });
  }
  return {
    seen,
    of: (event) => seen.filter((e) => e.event === event).map((e) => e.args[0]),
    next(event, match = () => true, timeout = 10000) {
      const found = seen.find((e) => e.event === event && match(...e.args));
      if (found) return Promise.resolve(found.args[0]);
      return new Promise((resolve, reject) => {
        const waiter = { event, match, resolve };
        waiters.push(waiter);
        setTimeout(() => {
          if (waiters.includes(waiter)) {
            waiters.splice(waiters.indexOf(waiter), 1);
            reject(new Error(`no ${event} event within ${timeout} ms`));
          }
        }, timeout);
      });
    },
  };
}
