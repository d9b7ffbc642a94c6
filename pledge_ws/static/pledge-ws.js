/*
 * pledge-ws.js: the reference browser client for the pledge-ws `/ws` protocol.
 *
 * One small class, no dependencies, no build step (ES2020). Copy it into any frontend.
 *
 *   const client = new PledgeWS({
 *     url: "/ws",                       // ws://, wss://, http(s):// or a path on this page's host
 *     symbols: ["PLGR-USDT"],           // subscribed at connect time (/ws?symbols=...)
 *     pingInterval: 5000,               // ms; keep it well inside the server's heartbeat_timeout
 *     onPrice(tick)   { },              // {symbol, price, seq, ts}; price is the exchange's string
 *     onState(state, detail) { },       // "connecting" | "live" | "stale" | "reconnecting" | "closed"
 *     onOpen(info)    { },              // socket open; info.reconnect is true after the first time
 *     onError(reason) { },              // a code -1 frame from the server, e.g. "heartbeat timeout"
 *     onRecovery(r)   { },              // after a reconnect, per symbol: {symbol, recovered, count}
 *   });
 *   client.subscribe(["BTC-USDT"]);     // {"op":"subscribe"}: the server sends its latest price at once
 *   client.unsubscribe(["PLGR-USDT"]);  // {"op":"unsubscribe"}
 *   client.close();                     // for good: no reconnect
 *
 * States: "connecting" (first attempt) -> "live" (open) <-> "stale" (a ping went unanswered, or the
 *         server sent code -1 "price feed interrupted"; the next price makes it "live" again)
 * -> "reconnecting" (closed, waiting out the backoff, then re-opening) -> "live" ...; "closed" after
 * close(). onState's detail is {previous, delay, attempt, why}: "reconnecting" is reported once
 * when the wait starts (with delay in ms and why) and again when the new socket is being opened.
 *
 * What it guarantees:
 * - Heartbeat: sends the text `ping` on open and every `pingInterval` ms (also piggy-backed on
 *   incoming frames, so a background tab whose timers the browser throttles keeps its heartbeat).
 * - Liveness: no frame within `pongTimeout` after a ping turns the state to "stale"; no frame for a
 *   further `deadAfter` ms closes the socket (code 4000) and reconnects.
 * - Reconnect: on any close that close() did not ask for, after a capped exponential backoff with
 *   jitter: min(backoffCap, backoffBase * 2^attempt), of which a random half is waited
 *   ("equal jitter"), so that thousands of pages do not come back in the same instant. The attempt
 *   counter resets once a new connection has delivered a frame. The current symbol set travels in
 *   the URL of every new connection, so subscriptions survive reconnects.
 * - Order: onPrice is called once per price, each newer than the last one of its symbol by the
 *   server's own rule (PledgeWS.isNewer: a higher seq, or a lower one whose ts is at least 30 s past
 *   the last one's: the exchange restarted that symbol's sequence); the snapshot the server repeats
 *   on reconnect is not delivered twice. Frames of symbols outside the current set (in flight
 *   during an unsubscribe) are dropped.
 * - Recovery: every reconnect carries `since=SYMBOL:SEQ,...` (the last seq delivered per subscribed
 *   symbol), and the server replays exactly the prices missed meanwhile, oldest first, before live
 *   ones; onPrice sees them like any other. onRecovery({symbol, recovered: true, count}) reports it;
 *   {recovered: false} means the server could not prove the gap closed (too old): only then re-read
 *   /price/history to fill a chart. onOpen's info.recovering lists the symbols asked for. If a
 *   connection with `since` is refused before it opens, the next attempt goes without it. Across a
 *   sequence reset a position from before it is answered {recovered: false}, and the snapshot
 *   that follows (newer by the rule above) starts the new sequence.
 *
 * Prices stay strings end to end: never parse them to a float for display.
 */
(function (root) {
  "use strict";

  const STATES = Object.freeze({
    CONNECTING: "connecting", // first attempt, not open yet
    LIVE: "live", // open, and the server answers
    STALE: "stale", // open, but a ping went unanswered or the server said "price feed interrupted"
    RECONNECTING: "reconnecting", // closed unexpectedly; waiting out the backoff or re-opening
    CLOSED: "closed", // close() was called
  });

  const CLOSE_DEAD = 4000; // our own close code when the server stopped answering
  const FEED_INTERRUPTED = "price feed interrupted"; // code -1: the server's prices are not current

  /** Compare two sequence strings (decimal digits, arbitrarily long) without losing precision. */
  function compareSeq(a, b) {
    const x = String(a).replace(/^0+(?=\d)/, "");
    const y = String(b).replace(/^0+(?=\d)/, "");
    if (x.length !== y.length) return x.length < y.length ? -1 : 1;
    return x < y ? -1 : x > y ? 1 : 0;
  }

  const RESET_AFTER_MS = 30000; // the server's rule (ticks.SequenceGuard): a restarted sequence

  /**
   * Whether a price {seq, ts} is newer than `last` (the last one delivered of its symbol, or
   * undefined): a higher seq, or a lower seq whose exchange time is at least 30 s past the last
   * one's (the exchange restarted the symbol's sequence). The same rule as the server's.
   */
  function isNewer(last, next) {
    if (!last) return true;
    const order = compareSeq(next.seq, last.seq);
    return order > 0 || (order < 0 && Number(next.ts) >= Number(last.ts) + RESET_AFTER_MS);
  }

  /** ws(s):// URL from an absolute ws/http URL or a path relative to the page. */
  function resolveUrl(url) {
    const base = root.location ? root.location.href : undefined;
    const resolved = new URL(url || "/ws", base);
    if (resolved.protocol === "http:") resolved.protocol = "ws:";
    if (resolved.protocol === "https:") resolved.protocol = "wss:";
    return resolved;
  }

  class PledgeWS {
    /**
     * @param {object} options
     * @param {string} [options.url="/ws"]
     * @param {string[]} [options.symbols=[]] empty: the server's default (its primary symbol), unfiltered
     * @param {number} [options.pingInterval=5000] ms between pings
     * @param {number} [options.pongTimeout] ms without any frame after a ping before "stale" (default min(pingInterval, 4000))
     * @param {number} [options.deadAfter] further ms of silence before the socket is dropped (default 2 * pingInterval)
     * @param {number} [options.backoffBase=500] ms, first reconnect delay (before jitter)
     * @param {number} [options.backoffCap=30000] ms, largest reconnect delay
     * @param {boolean} [options.autoConnect=true] connect in the constructor
     * @param {function} [options.WebSocket] WebSocket implementation (tests, Node)
     */
    constructor(options = {}) {
      this.url = resolveUrl(options.url);
      this.symbols = new Set(options.symbols || []);
      this.pingInterval = Math.max(250, options.pingInterval ?? 5000);
      this.pongTimeout = options.pongTimeout ?? Math.min(this.pingInterval, 4000);
      this.deadAfter = options.deadAfter ?? 2 * this.pingInterval;
      this.backoffBase = options.backoffBase ?? 500;
      this.backoffCap = options.backoffCap ?? 30000;
      this.onPrice = options.onPrice || (() => {});
      this.onState = options.onState || (() => {});
      this.onOpen = options.onOpen || (() => {});
      this.onError = options.onError || (() => {});
      this.onRecovery = options.onRecovery || (() => {});
      this._recovering = []; // symbols whose position the current connection's URL carries
      this._sinceRefused = false; // the last attempt with since= never opened: try once without
      this._openedNow = false; // the current socket reached "open"
      this._WebSocket = options.WebSocket || root.WebSocket;

      this.state = null;
      this._ws = null;
      this._attempt = 0; // reconnect attempts since the last connection that delivered a frame
      this._opened = 0; // connections that reached "open"
      this._feedStale = false; // the server announced "price feed interrupted"
      this._closedByUser = false;
      this._last = new Map(); // symbol -> {seq, ts} of the last delivered price
      this._lastFrameAt = 0;
      this._lastPingAt = 0;
      this._timers = { ping: 0, pong: 0, dead: 0, retry: 0 };

      // A network that comes back, or a tab that becomes visible, should not wait out a long backoff.
      this._wake = () => {
        if (this._timers.retry) this._reconnectNow();
        else if (this._ws && this._ws.readyState === 1) this._ping();
      };
      if (root.addEventListener) root.addEventListener("online", this._wake);
      if (root.document && root.document.addEventListener) {
        this._onVisible = () => root.document.visibilityState === "visible" && this._wake();
        root.document.addEventListener("visibilitychange", this._onVisible);
      }

      if (options.autoConnect !== false) this.connect();
    }

    /** Open the socket (called by the constructor unless autoConnect is false). */
    connect() {
      if (this._ws) return;
      this._closedByUser = false;
      // "connecting" only for the very first attempt; every later one is "reconnecting".
      const first = this.state === null || this.state === STATES.CLOSED;
      this._setState(first ? STATES.CONNECTING : STATES.RECONNECTING, { attempt: this._attempt });
      const url = new URL(this.url.href);
      if (this.symbols.size) url.searchParams.set("symbols", [...this.symbols].join(","));
      // Recovery needs the symbols in the URL: since may only name symbols the URL subscribes.
      const since = this.symbols.size ? [...this.symbols].filter((s) => this._last.has(s)) : [];
      this._recovering = this._sinceRefused ? [] : since;
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
      // An error is always followed by a close event; the close handler does the work.
      ws.onerror = () => {};
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
        this._last.delete(s); // a later re-subscribe must deliver its snapshot again
      });
      if (removed.length) this._send({ op: "unsubscribe", symbols: removed });
    }

    /** Close for good: no reconnect, timers and listeners released. */
    close() {
      this._closedByUser = true;
      this._clearTimers();
      if (root.removeEventListener) root.removeEventListener("online", this._wake);
      if (this._onVisible) root.document.removeEventListener("visibilitychange", this._onVisible);
      const ws = this._ws;
      this._ws = null;
      if (ws) ws.close(1000, "client closed");
      this._setState(STATES.CLOSED);
    }

    // --- internals -------------------------------------------------------------------------

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
      this.onOpen({ reconnect, url: ws.url, recovering: this._recovering.slice() });
    }

    _handleMessage(ws, event) {
      if (ws !== this._ws) return;
      const now = Date.now();
      this._lastFrameAt = now;
      this._attempt = 0;
      clearTimeout(this._timers.pong);
      clearTimeout(this._timers.dead);
      this._timers.pong = this._timers.dead = 0;
      // A pong ends a ping-timeout stale, not a server-announced feed outage (see below).
      if (this.state === STATES.STALE && !this._feedStale) this._setState(STATES.LIVE);
      // Timers of background tabs may be throttled to once a minute; frames are not.
      if (now - this._lastPingAt >= this.pingInterval) this._ping();

      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch (_) {
        return; // not ours to interpret
      }
      if (!msg || typeof msg !== "object") return;
      if (msg.code === 0) this._handlePrice(msg);
      else if (msg.code === 2 && typeof msg.symbol === "string") {
        const recovered = msg.data === "recovered";
        this.onRecovery({ symbol: msg.symbol, recovered, count: recovered ? Number(msg.count) : 0 });
      }
      else if (msg.code === -1 && msg.data === FEED_INTERRUPTED) {
        // The server says its prices are not current: stale until the next price arrives.
        this._feedStale = true;
        this._setState(STATES.STALE, { reason: FEED_INTERRUPTED });
      } else if (msg.code === -1) this.onError(String(msg.data));
      // code 1 ("pong") needs nothing more: any frame counts as a sign of life.
    }

    _handlePrice(msg) {
      const { symbol, data: price, seq, ts } = msg;
      if (typeof symbol !== "string" || typeof price !== "string" || seq == null) return;
      if (this.symbols.size && !this.symbols.has(symbol)) return;
      const tick = { seq: String(seq), ts: Number(ts) };
      if (!isNewer(this._last.get(symbol), tick)) return; // a repeated snapshot, or older
      this._last.set(symbol, tick);
      if (this._feedStale) {
        this._feedStale = false;
        this._setState(STATES.LIVE);
      }
      this.onPrice({ symbol, price, seq: tick.seq, ts: tick.ts });
    }

    _handleClose(ws, code, reason) {
      if (ws !== this._ws) return;
      this._ws = null;
      // Refused before it opened (e.g. HTTP 400 for a since= the server rejects): without it next.
      if (!this._openedNow && this._recovering.length) this._sinceRefused = true;
      this._openedNow = false;
      this._clearTimers();
      if (this._closedByUser) return;
      // A server going away (1001) names a window to spread reconnects over, so a restart
      // does not land on the remaining workers as one burst: wait a uniform share of it.
      const hint = code === 1001 && /reconnect_window_ms=(\d+)/.exec(reason || "");
      if (hint) {
        const delay = Math.round(Math.random() * Math.min(Number(hint[1]), this.backoffCap));
        this._setState(STATES.RECONNECTING, { delay, attempt: this._attempt, why: `closed ${code}: ${reason}` });
        this._timers.retry = setTimeout(() => this._reconnectNow(), delay);
        return;
      }
      this._scheduleReconnect(`closed ${code}${reason ? ": " + reason : ""}`);
    }

    _ping() {
      const ws = this._ws;
      if (!ws || ws.readyState !== 1) return;
      this._lastPingAt = Date.now();
      ws.send("ping");
      if (!this._timers.pong && !this._timers.dead) {
        const sentAt = this._lastPingAt;
        this._timers.pong = setTimeout(() => {
          this._timers.pong = 0;
          if (ws !== this._ws || this._lastFrameAt >= sentAt) return;
          this._setState(STATES.STALE, { silentMs: Date.now() - this._lastFrameAt });
          this._timers.dead = setTimeout(() => {
            this._timers.dead = 0;
            if (ws !== this._ws) return;
            ws.close(CLOSE_DEAD, "no answer to ping");
            // On a dead network the close event may come much later: don't wait for it.
            this._handleClose(ws, CLOSE_DEAD, "no answer to ping");
          }, this.deadAfter);
        }, this.pongTimeout);
      }
    }

    _send(message) {
      const ws = this._ws;
      // While closed, the symbol set is enough: the next connection carries it in its URL.
      if (ws && ws.readyState === 1) ws.send(JSON.stringify(message));
    }

    _scheduleReconnect(why) {
      const ceiling = Math.min(this.backoffCap, this.backoffBase * 2 ** this._attempt);
      const delay = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
      this._attempt = Math.min(this._attempt + 1, 30);
      this._setState(STATES.RECONNECTING, { delay, attempt: this._attempt, why });
      this._timers.retry = setTimeout(() => this._reconnectNow(), delay);
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
      this.onState(state, { previous, ...detail });
    }
  }

  PledgeWS.STATES = STATES;
  PledgeWS.compareSeq = compareSeq;
  PledgeWS.isNewer = isNewer;

  if (typeof module === "object" && module.exports) module.exports = PledgeWS;
  else root.PledgeWS = PledgeWS;
})(typeof globalThis !== "undefined" ? globalThis : this);
