/*
 * pledge-ws-client: the browser (and Node) client for the pledge-ws `/ws` protocol.
 *
 * An ES module with no dependencies and no build step; the page at GET / loads this very file.
 * The protocol it speaks is docs/protocol.md; its API, with examples, is clients/js/README.md.
 *
 *   import { PledgeWS } from "pledge-ws-client";
 *   const client = new PledgeWS({ url: "/ws", symbols: ["PLGR-USDT"] });
 *   client.on("price", (tick) => show(tick.symbol, tick.price));  // price: the exchange's string
 *   client.on("state", (state, detail) => badge(state));
 *
 * What it guarantees:
 * - Heartbeat: the text `ping` on open and every `pingInterval` ms (also when frames arrive, so a
 *   background tab whose timers the browser throttles keeps its heartbeat).
 * - Liveness: no frame within `pongTimeout` of a ping turns the state "stale"; no frame for a
 *   further `deadAfter` ms closes the socket (4000) and reconnects.
 * - Reconnect: after any close it did not ask for and that is not terminal (TERMINAL_CLOSE_CODES),
 *   with full-jitter backoff: a delay drawn uniformly from 0 to min(maxReconnectDelay,
 *   minReconnectDelay * 2^attempt). A server going away (1001) gives a reconnect window in its
 *   close reason; the client waits a uniform share of it instead, so a restart is no burst.
 *   The attempt count resets once a connection delivers a frame.
 * - Order: a price event per price, each newer than the last of its symbol by the server's rule
 *   (isNewer: a higher seq, or a lower one whose ts is at least 30 s past the last one's: the
 *   exchange restarted that symbol's sequence); a snapshot repeated on reconnect is not
 *   delivered twice; frames of symbols outside the current set are dropped.
 * - Recovery: every reconnect names the last seq delivered per subscribed symbol (`since=`), and
 *   the server replays exactly the prices missed, oldest first; "recovery" events say per symbol
 *   whether it could ({recovered: true, count}) or not ({recovered: false}: only then re-read
 *   /price/history). positions() gives what to save across a page reload; the `since` option
 *   resumes from it. A connection refused while it carried since= is retried without it, and
 *   its snapshot of those symbols is taken as it comes (the refused position may mean nothing).
 *
 * Prices stay strings end to end: never parse them to a float for display.
 */

/** Connection states, in the order a client usually sees them. */
export const STATES = Object.freeze({
  CONNECTING: "connecting", // first attempt, not open yet
  LIVE: "live", // open, and the server answers
  STALE: "stale", // open, but a ping went unanswered or the server said "price feed interrupted"
  RECONNECTING: "reconnecting", // closed; waiting out the backoff, or re-opening
  CLOSED: "closed", // close() was called, or the server closed with a terminal code
});

/** Close codes after which the client does not reconnect: retrying would repeat the fault. */
export const TERMINAL_CLOSE_CODES = Object.freeze([
  1002, // protocol error
  1003, // unsupported data (a binary frame)
  1009, // message too big
]);

export const CLOSE_DEAD = 4000; // the client's own close code when the server stopped answering
export const RESET_AFTER_MS = 30000; // the server's rule for a restarted sequence (docs/protocol.md)
const FEED_INTERRUPTED = "price feed interrupted"; // code -1: the server's prices are not current
const EVENTS = ["price", "state", "open", "error", "recovery", "close"];

/** Compare two sequence strings (decimal digits, any length) without losing precision. */
export function compareSeq(a, b) {
  const x = String(a).replace(/^0+(?=\d)/, "");
  const y = String(b).replace(/^0+(?=\d)/, "");
  if (x.length !== y.length) return x.length < y.length ? -1 : 1;
  return x < y ? -1 : x > y ? 1 : 0;
}

/**
 * Whether a price {seq, ts} is newer than `last` ({seq, ts} of the last one delivered of its
 * symbol, or undefined): a higher seq, or a lower seq whose exchange time is at least 30 s past
 * the last one's. The server applies the same rule (tests/data/order_cases.json).
 */
export function isNewer(last, next) {
  if (!last) return true;
  const order = compareSeq(next.seq, last.seq);
  if (order > 0) return true;
  return order < 0 && last.ts != null && Number(next.ts) >= Number(last.ts) + RESET_AFTER_MS;
}

/**
 * The structured view of a close: whether the client reconnects, and the server's hint. The
 * server's reason is text with `; key=value` parameters (docs/protocol.md, "Closing"), e.g.
 * "server shutting down; reconnect_window_ms=5000".
 */
export function closeInfo(code, reason = "") {
  const [text, ...params] = String(reason).split(";");
  const hint = {};
  for (const param of params) {
    const [key, value] = param.split("=").map((part) => part.trim());
    if (key === "reconnect_window_ms" && /^\d+$/.test(value || "")) hint.reconnectWindowMs = Number(value);
  }
  return { code, reason: text.trim(), reconnect: !TERMINAL_CLOSE_CODES.includes(code), hint };
}

function resolveUrl(url) {
  const base = globalThis.location ? globalThis.location.href : undefined;
  const resolved = new URL(url || "/ws", base);
  if (resolved.protocol === "http:") resolved.protocol = "ws:";
  if (resolved.protocol === "https:") resolved.protocol = "wss:";
  return resolved;
}

/** `since` as given ({symbol: seq} or {symbol: {seq, ts}}, or "A:SEQ,B:SEQ") -> Map of {seq, ts}. */
function parseSince(since) {
  const out = new Map();
  const entries =
    typeof since === "string"
      ? since.split(",").filter(Boolean).map((item) => item.split(":"))
      : Object.entries(since || {});
  for (const [symbol, value] of entries) {
    const seq = typeof value === "object" && value !== null ? value.seq : value;
    const ts = typeof value === "object" && value !== null && value.ts != null ? Number(value.ts) : null;
    // Only digits; how many the server accepts is its rule (a refusal is retried without since).
    if (symbol && /^\d+$/.test(String(seq))) out.set(symbol, { seq: String(seq), ts });
  }
  return out;
}

export class PledgeWS {
  /** @param {import("./pledge-ws").PledgeWSOptions} [options] */
  constructor(options = {}) {
    this.url = resolveUrl(options.url);
    this.symbols = new Set(options.symbols || []);
    this.pingInterval = Math.max(250, options.pingInterval ?? 5000);
    this.pongTimeout = options.pongTimeout ?? Math.min(this.pingInterval, 4000);
    this.deadAfter = options.deadAfter ?? 2 * this.pingInterval;
    this.minReconnectDelay = options.minReconnectDelay ?? options.backoffBase ?? 500;
    this.maxReconnectDelay = options.maxReconnectDelay ?? options.backoffCap ?? 30000;
    this.terminalCodes = new Set([...TERMINAL_CLOSE_CODES, ...(options.terminalCodes || [])]);
    this._WebSocket = options.WebSocket || globalThis.WebSocket;
    if (!this._WebSocket) throw new TypeError("no WebSocket implementation: pass options.WebSocket (e.g. the ws package)");
    this._listeners = new Map(EVENTS.map((name) => [name, []]));
    // The callback options of earlier versions are listeners like any other.
    const callbacks = { price: "onPrice", state: "onState", open: "onOpen", error: "onError", recovery: "onRecovery" };
    for (const [event, option] of Object.entries(callbacks)) if (options[option]) this.on(event, options[option]);

    this.state = null;
    this._ws = null;
    this._last = parseSince(options.since); // symbol -> {seq, ts} of the last delivered price
    this._recovering = []; // symbols whose position the current connection's URL carries
    this._reseed = new Set(); // symbols whose next price is taken as it is (their since was refused)
    this._sinceRefused = false; // the last attempt with since= never opened: the next goes without
    this._openedNow = false; // the current socket reached "open"
    this._attempt = 0; // reconnect attempts since the last connection that delivered a frame
    this._opened = 0; // connections that reached "open"
    this._feedStale = false; // the server announced "price feed interrupted"
    this._closedByUser = false;
    this._lastFrameAt = 0;
    this._lastPingAt = 0;
    this._timers = { ping: 0, pong: 0, dead: 0, retry: 0 };

    // A network that comes back, or a tab that becomes visible, should not wait out a long backoff.
    this._wake = () => {
      if (this._timers.retry) this._reconnectNow();
      else if (this._ws && this._ws.readyState === 1) this._ping();
    };
    if (globalThis.addEventListener) globalThis.addEventListener("online", this._wake);
    if (globalThis.document && globalThis.document.addEventListener) {
      this._onVisible = () => globalThis.document.visibilityState === "visible" && this._wake();
      globalThis.document.addEventListener("visibilitychange", this._onVisible);
    }
    if (options.autoConnect !== false) this.connect();
  }

  /** Listen to an event: price, state, open, error, recovery, close. Returns this. */
  on(event, fn) {
    const list = this._listeners.get(event);
    if (!list) throw new TypeError(`unknown event ${event}: one of ${EVENTS.join(", ")}`);
    list.push(fn);
    return this;
  }

  /** Stop listening (the same function given to on or once). Returns this. */
  off(event, fn) {
    const list = this._listeners.get(event) || [];
    const index = list.findIndex((l) => l === fn || l._original === fn);
    if (index >= 0) list.splice(index, 1);
    return this;
  }

  /** Listen to the next occurrence of an event only. Returns this. */
  once(event, fn) {
    const wrapper = (...args) => {
      this.off(event, wrapper);
      fn(...args);
    };
    wrapper._original = fn;
    return this.on(event, wrapper);
  }

  /** The last position per symbol, {symbol: {seq, ts}}: save it, pass it back as `since`. */
  positions() {
    return Object.fromEntries([...this._last].map(([symbol, last]) => [symbol, { ...last }]));
  }

  /** Open the socket (called by the constructor unless autoConnect is false). */
  connect() {
    if (this._ws) return;
    this._closedByUser = false;
    const first = this.state === null || this.state === STATES.CLOSED;
    this._setState(first ? STATES.CONNECTING : STATES.RECONNECTING, { attempt: this._attempt });
    const url = new URL(this.url.href);
    if (this.symbols.size) url.searchParams.set("symbols", [...this.symbols].join(","));
    // Recovery needs the symbols in the URL: since may only name symbols the URL subscribes.
    const since = this.symbols.size ? [...this.symbols].filter((s) => this._last.has(s)) : [];
    this._recovering = this._sinceRefused ? [] : since;
    // A position the server refused may be worth nothing (another deployment's, or garbage):
    // this connection's snapshot of those symbols is taken as it comes.
    this._reseed = new Set(this._sinceRefused ? since : []);
    this._sinceRefused = false;
    if (this._recovering.length) {
      url.searchParams.set("since", this._recovering.map((s) => `${s}:${this._last.get(s).seq}`).join(","));
    }
    let ws;
    try {
      ws = new this._WebSocket(url.href);
    } catch (err) {
      this._scheduleReconnect(String(err));
      return;
    }
    this._ws = ws;
    ws.onopen = () => this._handleOpen(ws);
    ws.onmessage = (event) => this._handleMessage(ws, event);
    ws.onclose = (event) => this._handleClose(ws, event.code, event.reason);
    ws.onerror = () => {}; // always followed by a close event, which does the work
  }

  /** Add symbols; the server answers with each one's latest price at once. */
  subscribe(symbols) {
    const added = [].concat(symbols).filter((s) => !this.symbols.has(s));
    added.forEach((s) => this.symbols.add(s));
    if (added.length) this._send({ op: "subscribe", symbols: added });
  }

  /** Remove symbols; frames of them still in flight are dropped. */
  unsubscribe(symbols) {
    const removed = [].concat(symbols).filter((s) => this.symbols.has(s));
    removed.forEach((s) => {
      this.symbols.delete(s);
      this._last.delete(s); // a later re-subscribe delivers its snapshot again
    });
    if (removed.length) this._send({ op: "unsubscribe", symbols: removed });
  }

  /** Close for good: no reconnect, timers and listeners released. */
  close() {
    this._closedByUser = true;
    this._clearTimers();
    if (globalThis.removeEventListener) globalThis.removeEventListener("online", this._wake);
    if (this._onVisible) globalThis.document.removeEventListener("visibilitychange", this._onVisible);
    const ws = this._ws;
    this._ws = null;
    if (ws) ws.close(1000, "client closed");
    this._setState(STATES.CLOSED);
  }

  // --- internals ---------------------------------------------------------------------------

  _emit(event, ...args) {
    for (const fn of [...this._listeners.get(event)]) {
      try {
        fn(...args);
      } catch (err) {
        // One listener's bug must not stop the others, nor the client.
        setTimeout(() => {
          throw err;
        });
      }
    }
  }

  _handleOpen(ws) {
    if (ws !== this._ws) return;
    const reconnect = this._opened > 0;
    this._opened += 1;
    this._lastFrameAt = Date.now();
    this._feedStale = false;
    this._setState(STATES.LIVE);
    this._ping(); // at once: the pong proves the server serves, and resets the backoff
    this._timers.ping = setInterval(() => this._ping(), this.pingInterval);
    this._openedNow = true;
    this._emit("open", { reconnect, url: ws.url, recovering: this._recovering.slice() });
  }

  _handleMessage(ws, event) {
    if (ws !== this._ws) return;
    const now = Date.now();
    this._lastFrameAt = now;
    this._attempt = 0;
    clearTimeout(this._timers.pong);
    clearTimeout(this._timers.dead);
    this._timers.pong = this._timers.dead = 0;
    if (this.state === STATES.STALE && !this._feedStale) this._setState(STATES.LIVE);
    if (now - this._lastPingAt >= this.pingInterval) this._ping(); // throttled background timers
    let msg;
    try {
      msg = JSON.parse(typeof event.data === "string" ? event.data : String(event.data));
    } catch (_) {
      return; // not ours to interpret
    }
    if (!msg || typeof msg !== "object") return;
    if (msg.code === 0) this._handlePrice(msg);
    else if (msg.code === 2 && typeof msg.symbol === "string") this._handleRecovery(msg);
    else if (msg.code === -1 && msg.data === FEED_INTERRUPTED) {
      this._feedStale = true; // stale until the next price arrives
      this._setState(STATES.STALE, { reason: FEED_INTERRUPTED });
    } else if (msg.code === -1) this._emit("error", String(msg.data));
    // code 1 ("pong") needs nothing more: any frame counts as a sign of life.
  }

  _handleRecovery(msg) {
    const recovered = msg.data === "recovered";
    const last = this._last.get(msg.symbol);
    // A position saved without its time cannot tell a restarted sequence from an older price:
    // once the server says "not recovered", its snapshot starts the symbol again.
    if (!recovered && last && last.ts == null) this._last.delete(msg.symbol);
    this._emit("recovery", { symbol: msg.symbol, recovered, count: recovered ? Number(msg.count) : 0 });
  }

  _handlePrice(msg) {
    const { symbol, data: price, seq, ts } = msg;
    if (typeof symbol !== "string" || typeof price !== "string" || seq == null) return;
    if (this.symbols.size && !this.symbols.has(symbol)) return;
    const tick = { seq: String(seq), ts: Number(ts) };
    const last = this._last.get(symbol);
    if (this._reseed.delete(symbol) && last && last.seq !== tick.seq) this._last.delete(symbol);
    if (!isNewer(this._last.get(symbol), tick)) return; // a repeated snapshot, or older
    this._last.set(symbol, tick);
    if (this._feedStale) {
      this._feedStale = false;
      this._setState(STATES.LIVE);
    }
    this._emit("price", { symbol, price, seq: tick.seq, ts: tick.ts });
  }

  _handleClose(ws, code, reason) {
    if (ws !== this._ws) return;
    this._ws = null;
    // Refused before it opened (e.g. HTTP 400 for a since= the server rejects): without it next.
    if (!this._openedNow && this._recovering.length) this._sinceRefused = true;
    this._openedNow = false;
    this._clearTimers();
    const info = closeInfo(code, reason);
    info.reconnect = !this._closedByUser && !this.terminalCodes.has(code);
    if (!info.reconnect) {
      this._emit("close", { ...info, delay: null });
      if (!this._closedByUser) this._setState(STATES.CLOSED, { code, reason: info.reason });
      return;
    }
    if (code === 1001 && info.hint.reconnectWindowMs !== undefined) {
      // Spread over the server's window, so a restart does not land on the others as one burst.
      const delay = Math.round(Math.random() * Math.min(info.hint.reconnectWindowMs, this.maxReconnectDelay));
      this._emit("close", { ...info, delay });
      this._setState(STATES.RECONNECTING, { delay, attempt: this._attempt, why: `closed ${code}: ${reason}` });
      this._timers.retry = setTimeout(() => this._reconnectNow(), delay);
      return;
    }
    const delay = this._scheduleReconnect(`closed ${code}${reason ? ": " + reason : ""}`);
    this._emit("close", { ...info, delay });
  }

  _ping() {
    const ws = this._ws;
    if (!ws || ws.readyState !== 1) return;
    this._lastPingAt = Date.now();
    ws.send("ping");
    if (this._timers.pong || this._timers.dead) return;
    const sentAt = this._lastPingAt;
    this._timers.pong = setTimeout(() => {
      this._timers.pong = 0;
      if (ws !== this._ws || this._lastFrameAt >= sentAt) return;
      this._setState(STATES.STALE, { silentMs: Date.now() - this._lastFrameAt });
      this._timers.dead = setTimeout(() => {
        this._timers.dead = 0;
        if (ws !== this._ws) return;
        ws.close(CLOSE_DEAD, "no answer to ping");
        this._handleClose(ws, CLOSE_DEAD, "no answer to ping"); // a dead network closes late
      }, this.deadAfter);
    }, this.pongTimeout);
  }

  _send(message) {
    const ws = this._ws;
    // While closed, the symbol set is enough: the next connection carries it in its URL.
    if (ws && ws.readyState === 1) ws.send(JSON.stringify(message));
  }

  /** Full jitter: uniform in [0, min(max, min * 2^attempt)]; returns the delay. */
  _scheduleReconnect(why) {
    const ceiling = Math.min(this.maxReconnectDelay, this.minReconnectDelay * 2 ** this._attempt);
    const delay = Math.round(Math.random() * ceiling);
    this._attempt = Math.min(this._attempt + 1, 30);
    this._setState(STATES.RECONNECTING, { delay, attempt: this._attempt, why });
    this._timers.retry = setTimeout(() => this._reconnectNow(), delay);
    return delay;
  }

  _reconnectNow() {
    clearTimeout(this._timers.retry);
    this._timers.retry = 0;
    if (!this._closedByUser) this.connect();
  }

  _clearTimers() {
    clearInterval(this._timers.ping);
    clearTimeout(this._timers.pong);
    clearTimeout(this._timers.dead);
    clearTimeout(this._timers.retry);
    this._timers = { ping: 0, pong: 0, dead: 0, retry: 0 };
  }

  _setState(state, detail = {}) {
    if (state === this.state && state !== STATES.RECONNECTING) return;
    const previous = this.state;
    this.state = state;
    this._emit("state", state, { previous, ...detail });
  }
}

PledgeWS.STATES = STATES;
PledgeWS.compareSeq = compareSeq;
PledgeWS.isNewer = isNewer;

export default PledgeWS;
