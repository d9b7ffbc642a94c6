// The client against a real pledge-ws and the exchange simulator, with Node's WebSocket from ws.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import WebSocket from "ws";

import PledgeWSDefault, { PledgeWS, STATES } from "../src/pledge-ws.js";
import { record, startStack, waitFor } from "./support.js";

let stack;
const clients = [];

/** A client with its events recorded from the start (connect() after the listeners). */
function client(options = {}) {
  const c = new PledgeWS({
    url: stack.wsUrl,
    symbols: ["PLGR-USDT"],
    WebSocket,
    pingInterval: 500,
    ...options,
    autoConnect: false,
  });
  clients.push(c);
  const events = record(c);
  c.connect();
  return [c, events];
}

before(async () => {
  stack = await startStack({ HEARTBEAT_TIMEOUT: "2" });
});

after(async () => {
  for (const c of clients) c.close();
  await stack.stop();
});

test("the default export is the class", () => {
  assert.equal(PledgeWSDefault, PledgeWS);
});

test("prices: the snapshot at once, then every new price, and several listeners", async () => {
  await stack.setPrice("PLGR-USDT", "0.002700");
  const [c, events] = client();
  const second = [];
  c.on("price", (tick) => second.push(tick.price));
  const snapshot = await events.next("price");
  assert.equal(snapshot.price, "0.002700");
  assert.equal(typeof snapshot.seq, "string");
  const tick = await stack.setPrice("PLGR-USDT", "0.002712");
  const pushed = await events.next("price", (t) => t.price === "0.002712");
  assert.equal(pushed.seq, tick.sequence);
  assert.deepEqual(second, ["0.002700", "0.002712"]);
  assert.deepEqual(events.of("state").slice(0, 2), ["connecting", "live"]);
  assert.equal(events.of("open")[0].reconnect, false);
  let onceCalls = 0;
  c.once("price", () => (onceCalls += 1));
  await stack.setPrice("PLGR-USDT", "0.002713");
  await stack.setPrice("PLGR-USDT", "0.002714");
  await events.next("price", (t) => t.price === "0.002714");
  assert.equal(onceCalls, 1);
});

test("subscribe and unsubscribe choose the symbols", async () => {
  await stack.setPrice("BTC-USDT", "67000.1");
  const [c, events] = client();
  await events.next("price", (t) => t.symbol === "PLGR-USDT");
  c.subscribe(["BTC-USDT"]);
  assert.equal((await events.next("price", (t) => t.symbol === "BTC-USDT")).price, "67000.1");
  c.unsubscribe(["PLGR-USDT"]);
  await stack.setPrice("PLGR-USDT", "0.002801");
  await stack.setPrice("BTC-USDT", "67000.2");
  await events.next("price", (t) => t.price === "67000.2");
  assert.ok(!events.of("price").some((t) => t.price === "0.002801"), "an unsubscribed symbol's price arrived");
});

test("the heartbeat keeps the connection past the server's timeout", async () => {
  const pings = await stack.metric('pledge_ws_client_messages_total{kind="ping"}');
  const [c, events] = client();
  await events.next("price");
  await new Promise((resolve) => setTimeout(resolve, 4500)); // over twice HEARTBEAT_TIMEOUT
  assert.equal(c.state, STATES.LIVE);
  assert.deepEqual(events.of("error"), []);
  assert.equal(events.of("open").length, 1);
  assert.ok((await stack.metric('pledge_ws_client_messages_total{kind="ping"}')) >= pings + 8);
});

test("a reconnect with since gets exactly the missed prices, in order", async () => {
  await stack.setPrice("PLGR-USDT", "0.003100");
  const [c, events] = client({ minReconnectDelay: 2000, maxReconnectDelay: 2000 });
  await events.next("price", (t) => t.price === "0.003100");
  const random = Math.random;
  Math.random = () => 1; // full jitter at its ceiling: 2 s away, while prices move
  try {
    c._ws.close(4001, "test drop"); // a flaky network
    await events.next("state", (s) => s === STATES.RECONNECTING);
  } finally {
    Math.random = random;
  }
  const missed = [];
  for (const price of ["0.003101", "0.003099", "0.003105"]) missed.push((await stack.setPrice("PLGR-USDT", price)).sequence);
  const recovery = await events.next("recovery", () => true, 10000);
  assert.deepEqual(recovery, { symbol: "PLGR-USDT", recovered: true, count: 3 });
  await events.next("price", (t) => t.price === "0.003105");
  const after = events.of("price").map((t) => t.seq);
  assert.deepEqual(after.slice(-3), missed);
  const reopened = events.of("open").at(-1);
  assert.ok(reopened.reconnect && reopened.recovering.includes("PLGR-USDT"));
  assert.match(reopened.url, /since=PLGR-USDT%3A\d+/);
  const saved = c.positions();
  assert.equal(saved["PLGR-USDT"].seq, missed.at(-1));

  // A new client (a page reload) resumes from the saved positions: nothing to re-read.
  await stack.setPrice("PLGR-USDT", "0.003106");
  const [, resumedEvents] = client({ since: saved });
  assert.deepEqual(await resumedEvents.next("recovery"), { symbol: "PLGR-USDT", recovered: true, count: 1 });
  assert.equal((await resumedEvents.next("price")).price, "0.003106");
});

test("a sequence reset: the next price has a lower seq and is delivered", async () => {
  const [c, events] = client();
  await stack.setPrice("PLGR-USDT", "0.003200");
  const before = await events.next("price", (t) => t.price === "0.003200");
  await stack.sim("sequence-reset", { symbol: "PLGR-USDT", start: 1 });
  await stack.setPrice("PLGR-USDT", "0.003150");
  const reset = await events.next("price", (t) => t.price === "0.003150");
  assert.equal(reset.seq, "1");
  assert.ok(BigInt(reset.seq) < BigInt(before.seq) && reset.ts >= before.ts + 30000);
  await stack.setPrice("PLGR-USDT", "0.003151");
  assert.equal((await events.next("price", (t) => t.price === "0.003151")).seq, "2");
});

test("a refused since is retried without it", async () => {
  await stack.setPrice("PLGR-USDT", "0.003300");
  const urls = [];
  class Recording extends WebSocket {
    constructor(url) {
      super(url);
      urls.push(url);
    }
  }
  const [c, events] = client({ WebSocket: Recording, since: { "PLGR-USDT": "9".repeat(31) }, minReconnectDelay: 100 });
  const tick = await events.next("price", () => true, 15000);
  assert.equal(tick.price, "0.003300");
  assert.match(urls[0], /since=/); // refused: HTTP 400, more digits than the server takes
  assert.doesNotMatch(urls.at(-1), /since=/);
  assert.ok(events.of("close").length >= 1 && events.of("close")[0].reconnect);
  await waitFor(() => c.state === STATES.LIVE, 5000, "live");
});

test("a terminal close code ends the client without a reconnect", async () => {
  const [c, events] = client();
  await events.next("price");
  c._ws.send("x".repeat(5000)); // over MAX_MESSAGE_BYTES: the server closes with 1009
  const closed = await events.next("close");
  assert.equal(closed.code, 1009);
  assert.equal(closed.reconnect, false);
  await waitFor(() => c.state === STATES.CLOSED, 5000, "closed");
  await new Promise((resolve) => setTimeout(resolve, 1000));
  assert.equal(events.of("open").length, 1);
});
