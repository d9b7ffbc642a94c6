/*
 * The live price page (GET /): its state, the DOM and the client's events. ES modules, no
 * dependencies, no build step: format.js (exact decimals, clock, labels; pure), chart.js (the
 * SVG chart), and the client, the npm package pledge-ws-client's own file
 * (clients/js/src/pledge-ws.js), served as /static/pledge-ws.js.
 *
 * Flow: GET /symbols (picker, heartbeat) -> PledgeWS connects to /ws?symbols=<chosen> -> the
 * server's snapshot price shows at once -> on the first open GET /price/history fills the chart,
 * merged with pushed ticks by sequence so there is no hole and no duplicate -> every pushed price
 * extends the chart. A reconnect recovers the missed prices inside the stream (since=, see
 * pledge-ws.js); /price/history is read again only if the server answers "not recovered".
 *
 * Prices are strings from the exchange and are shown as such. Arithmetic on them (the change
 * over the window) is exact decimal arithmetic on BigInt; floats are used only for pixel
 * positions in the chart.
 */
import { drawChart, showCrosshair } from "./chart.js";
import { STATE_TEXT, clockMs, duration, formatUnits, parseDecimal, priceChange } from "./format.js";
import { PledgeWS, compareSeq } from "./pledge-ws.js";

{
  const el = (id) => document.querySelector(`[data-testid="${id}"]`);

  // --- page state ----------------------------------------------------------------------------

  const page = {
    config: null, // GET /symbols
    symbol: null, // the symbol on screen (the only one subscribed)
    ticks: [], // [{price, seq, ts, value}] of `symbol`, increasing seq, at most history_limit
    sequenceSince: 0, // exchange time of the current sequence's first tick seen (after a reset)
    client: null,
    historyToken: 0, // bumps on every switch, so a late history answer for another symbol is ignored
    renderQueued: false,
    geometry: null, // the chart's, for the crosshair
    pointerX: null, // where the pointer is over the chart (null: not over it)
  };

  /**
   * Merge ticks into page.ticks: sorted by seq, one per seq, the newest history_limit kept.
   * A pushed price is always newer than the last one (the client's rule, PledgeWS.isNewer), so
   * one with a lower seq means the exchange restarted the sequence: the chart starts again,
   * and older ticks (of the old sequence, from a history read in flight) are left out.
   */
  function addTicks(incoming, pushed = false) {
    const ticks = page.ticks;
    const fresh = incoming
      .map((t) => ({ price: t.price, seq: String(t.seq), ts: Number(t.ts), value: Number(t.price) }))
      .filter((t) => t.ts >= page.sequenceSince);
    const last = ticks[ticks.length - 1];
    if (pushed && fresh.length === 1 && last && compareSeq(fresh[0].seq, last.seq) < 0) {
      page.sequenceSince = fresh[0].ts; // a sequence reset
      page.ticks = [fresh[0]];
    } else if (fresh.length === 1 && (!last || compareSeq(fresh[0].seq, last.seq) > 0)) {
      ticks.push(fresh[0]); // the common case: a pushed price, newer than everything
    } else {
      const merged = ticks.concat(fresh).sort((x, y) => compareSeq(x.seq, y.seq));
      page.ticks = merged.filter((t, i) => i === 0 || t.seq !== merged[i - 1].seq);
    }
    const limit = (page.config && page.config.history_limit) || 1000;
    if (page.ticks.length > limit) page.ticks.splice(0, page.ticks.length - limit);
    scheduleRender();
  }

  async function loadHistory(symbol) {
    const token = page.historyToken;
    const limit = (page.config && page.config.history_limit) || 1000;
    const last = page.ticks[page.ticks.length - 1];
    // After a reconnect, only what is newer than the last tick we hold (since is inclusive).
    const since = last ? `&since=${last.ts}` : "";
    const url = `/price/history?symbol=${encodeURIComponent(symbol)}&limit=${limit}${since}`;
    try {
      const response = await fetch(url, { cache: "no-store" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const body = await response.json();
      if (token !== page.historyToken || symbol !== page.symbol) return;
      addTicks(body.ticks || []);
    } catch (err) {
      // The socket's next open reads it again; while it stays open, retry shortly.
      setTimeout(() => {
        if (token === page.historyToken && page.client && page.client.state === "live") loadHistory(symbol);
      }, 2000);
    }
  }

  // --- rendering -----------------------------------------------------------------------------

  function scheduleRender() {
    if (page.renderQueued) return;
    page.renderQueued = true;
    requestAnimationFrame(() => {
      page.renderQueued = false;
      render();
    });
  }

  let lastShownPrice = null;

  function render() {
    const ticks = page.ticks;
    const last = ticks[ticks.length - 1];
    const first = ticks[0];
    const priceEl = el("price");
    priceEl.textContent = last ? last.price : "—";
    if (last && lastShownPrice !== null && last.price !== lastShownPrice) {
      const change = priceChange(lastShownPrice, last.price);
      flash(priceEl, change ? change.direction : "flat");
    }
    lastShownPrice = last ? last.price : null;

    const changeEl = el("change");
    const change = first && last ? priceChange(first.price, last.price) : null;
    changeEl.dataset.direction = change ? change.direction : "flat";
    if (change) {
      const arrow = { up: "▲", down: "▼", flat: "■" }[change.direction];
      changeEl.querySelector(".arrow").textContent = arrow;
      changeEl.querySelector(".diff").textContent = change.diff;
      changeEl.querySelector(".pct").textContent = change.pct;
    } else {
      changeEl.querySelector(".arrow").textContent = "";
      changeEl.querySelector(".diff").textContent = "—";
      changeEl.querySelector(".pct").textContent = "";
    }
    el("window").textContent =
      ticks.length > 1 ? `over ${duration(last.ts - first.ts)} · ${ticks.length} ticks` : ticks.length ? "1 tick" : "no ticks yet";

    const lastTick = el("last-tick");
    if (last) {
      lastTick.textContent = clockMs(last.ts);
      lastTick.dateTime = new Date(last.ts).toISOString();
      el("seq").textContent = last.seq;
    } else {
      lastTick.textContent = "—";
      lastTick.removeAttribute("datetime");
      el("seq").textContent = "—";
    }
    renderAge();
    renderChart();
  }

  function renderAge() {
    const last = page.ticks[page.ticks.length - 1];
    el("age").textContent = last ? `${duration(Date.now() - last.ts)} ago` : "";
  }

  function flash(node, direction) {
    node.classList.remove("flash-up", "flash-down", "flash-flat");
    void node.offsetWidth; // restart the animation
    node.classList.add(`flash-${direction}`);
  }

  function renderChart() {
    page.geometry = drawChart(el("chart"), page.ticks, page.symbol);
    // Keep the crosshair where the pointer is.
    if (page.pointerX !== null) showCrosshair(el("chart"), page.geometry, page.ticks, page.pointerX);
  }

  /** Crosshair with the nearest tick's price and time under the pointer. */
  function onPointer(event) {
    page.pointerX = event.type === "pointerleave" ? null : event.clientX;
    showCrosshair(el("chart"), page.geometry, page.ticks, page.pointerX);
  }

  // --- connection state, errors, picker ------------------------------------------------------

  const stateLog = []; // [{state, at}], newest last (the e2e tests read it; handy in the console)

  function showState(state, detail) {
    if (!stateLog.length || stateLog[stateLog.length - 1].state !== state) stateLog.push({ state, at: Date.now() });
    if (stateLog.length > 100) stateLog.shift();
    const badge = el("state");
    badge.dataset.state = state;
    badge.querySelector(".label").textContent = STATE_TEXT[state] || state;
    let title = "";
    if (state === "reconnecting" && detail && detail.delay) title = `retrying in ${(detail.delay / 1000).toFixed(1)} s`;
    if (state === "stale") {
      title =
        detail && detail.reason
          ? "the server's exchange feed is interrupted; showing the last known price"
          : "the server has not answered a ping; prices may be out of date";
    }
    if (state === "live") title = "connected; prices arrive as they trade";
    badge.title = title;
    document.documentElement.dataset.state = state;
  }

  let errorTimer = 0;
  function showError(message) {
    const box = el("error");
    box.textContent = message;
    box.hidden = false;
    clearTimeout(errorTimer);
    errorTimer = setTimeout(() => (box.hidden = true), 8000);
  }

  function buildPicker(symbols) {
    const picker = el("symbol-picker");
    picker.replaceChildren(
      ...symbols.map((symbol) => {
        const button = document.createElement("button");
        button.type = "button";
        button.dataset.symbol = symbol;
        button.textContent = symbol;
        button.addEventListener("click", () => selectSymbol(symbol));
        return button;
      }),
    );
    picker.hidden = symbols.length < 2;
  }

  function selectSymbol(symbol) {
    if (symbol === page.symbol) return;
    const previous = page.symbol;
    page.symbol = symbol;
    page.ticks = [];
    page.sequenceSince = 0;
    page.historyToken += 1;
    lastShownPrice = null;
    for (const button of el("symbol-picker").querySelectorAll("button")) {
      button.setAttribute("aria-pressed", String(button.dataset.symbol === symbol));
    }
    el("symbol").textContent = symbol;
    el("price-label").textContent = `${symbol} price`;
    document.title = `${symbol} · pledge-ws`;
    if (location.hash.slice(1) !== symbol) history.replaceState(null, "", `#${symbol}`);
    if (page.client) {
      // Subscribe first: the server sends the new symbol's latest price at once.
      page.client.subscribe([symbol]);
      if (previous) page.client.unsubscribe([previous]);
      if (page.client.state === "live" || page.client.state === "stale") loadHistory(symbol);
    }
    render();
  }

  // --- start ---------------------------------------------------------------------------------

  async function loadConfig() {
    for (let attempt = 0; ; attempt += 1) {
      try {
        const response = await fetch("/symbols", { cache: "no-store" });
        if (response.ok) return await response.json();
      } catch (_) {
        /* server not reachable yet */
      }
      showState(attempt ? "reconnecting" : "connecting");
      const ceiling = Math.min(15000, 500 * 2 ** attempt);
      await new Promise((resolve) => setTimeout(resolve, ceiling / 2 + (Math.random() * ceiling) / 2));
    }
  }

  async function start() {
    showState("connecting");
    const config = await loadConfig();
    page.config = config;
    buildPicker(config.symbols);
    const wanted = decodeURIComponent(location.hash.slice(1)).toUpperCase();
    const symbol = config.symbols.includes(wanted) ? wanted : config.primary;
    // Ping at a quarter of the server's heartbeat timeout: three pings may be lost before it drops us.
    const pingInterval = Math.max(1000, Math.floor((config.heartbeat_timeout * 1000) / 4));
    el("heartbeat").textContent = `every ${duration(pingInterval)} · timeout ${duration(config.heartbeat_timeout * 1000)}`;

    selectSymbol(symbol);
    page.client = new PledgeWS({ url: "/ws", symbols: [symbol], pingInterval, autoConnect: false })
      .on("state", showState)
      .on("error", showError)
      // First open: the chart's history. A reconnect recovers missed prices in the stream
      // (since=); /price/history only when the server says "not recovered", or was not asked.
      .on("open", (info) => {
        if (!info.reconnect || !info.recovering.includes(page.symbol)) loadHistory(page.symbol);
      })
      .on("recovery", (r) => {
        if (!r.recovered && r.symbol === page.symbol) loadHistory(page.symbol);
      })
      .on("price", (tick) => {
        if (tick.symbol === page.symbol) addTicks([tick], true);
      });
    page.client.connect();
    window.pledgeClient = page.client; // handy in the console

    const svg = el("chart");
    svg.addEventListener("pointermove", onPointer);
    svg.addEventListener("pointerleave", onPointer);
    new ResizeObserver(() => scheduleRender()).observe(svg);
    setInterval(renderAge, 1000);
    window.addEventListener("hashchange", () => {
      const s = decodeURIComponent(location.hash.slice(1)).toUpperCase();
      if (config.symbols.includes(s)) selectSymbol(s);
    });
  }

  // Exposed for tests and for other pages that want the same exact arithmetic.
  window.pledgePage = { priceChange, parseDecimal, formatUnits, page, stateLog };
  start();
}
