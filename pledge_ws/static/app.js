/*
 * The live price page (GET /). An ES module, no dependencies, no build step; the client is the
 * npm package pledge-ws-client's own file (clients/js/src/pledge-ws.js), served as /static/pledge-ws.js.
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
import { PledgeWS, compareSeq } from "./pledge-ws.js";

{
  const el = (id) => document.querySelector(`[data-testid="${id}"]`);
  const SVG_NS = "http://www.w3.org/2000/svg";

  // --- exact decimals ------------------------------------------------------------------------

  /** "0.002700" -> {units: 2700n, scale: 6}; null for anything that is not a plain decimal. */
  function parseDecimal(text) {
    const m = /^(\d*)(?:\.(\d*))?$/.exec(String(text).trim());
    if (!m || (m[1] === "" && !m[2])) return null;
    const frac = m[2] || "";
    return { units: BigInt((m[1] || "0") + frac), scale: frac.length };
  }

  /** Express a decimal with `scale` fractional digits (scale >= its own). */
  const rescale = (d, scale) => d.units * 10n ** BigInt(scale - d.scale);

  /** BigInt units at `scale` -> "1.2300" (sign included when `signed`). */
  function formatUnits(units, scale, signed) {
    const negative = units < 0n;
    let digits = (negative ? -units : units).toString().padStart(scale + 1, "0");
    if (scale > 0) digits = digits.slice(0, -scale) + "." + digits.slice(-scale);
    return (negative ? "-" : signed && units > 0n ? "+" : "") + digits;
  }

  /** n / d rounded half away from zero (d > 0). */
  function divRound(n, d) {
    const q = n / d;
    const r = n % d;
    if (2n * (r < 0n ? -r : r) >= d) return q + (n < 0n ? -1n : 1n);
    return q;
  }

  /**
   * Change from `first` to `last`, both price strings: the exact difference (at the larger of
   * their scales) and the percentage to two decimals, computed on integers, never on floats.
   */
  function priceChange(first, last) {
    const a = parseDecimal(first);
    const b = parseDecimal(last);
    if (!a || !b || a.units === 0n) return null;
    const scale = Math.max(a.scale, b.scale);
    const from = rescale(a, scale);
    const diff = rescale(b, scale) - from;
    const hundredths = divRound(diff * 10000n, from); // percent * 100
    let pct = formatUnits(hundredths, 2, true) + "%";
    if (hundredths === 0n && diff !== 0n) pct = (diff > 0n ? "+" : "-") + "<0.01%";
    return { diff: formatUnits(diff, scale, true), pct, direction: diff > 0n ? "up" : diff < 0n ? "down" : "flat" };
  }

  // --- formatting ----------------------------------------------------------------------------

  const pad = (n, width = 2) => String(n).padStart(width, "0");
  const clock = (ms, withSeconds = true) => {
    const d = new Date(ms);
    return `${pad(d.getHours())}:${pad(d.getMinutes())}` + (withSeconds ? `:${pad(d.getSeconds())}` : "");
  };
  const clockMs = (ms) => `${clock(ms)}.${pad(new Date(ms).getMilliseconds(), 3)}`;

  function duration(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 && s < 600 ? ` ${s % 60} s` : ""}`;
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    return m ? `${h} h ${m} min` : `${h} h`;
  }

  const STATE_TEXT = {
    connecting: "Connecting…",
    live: "Live",
    stale: "Stale",
    reconnecting: "Reconnecting…",
    closed: "Closed",
  };

  // --- page state ----------------------------------------------------------------------------

  const page = {
    config: null, // GET /symbols
    symbol: null, // the symbol on screen (the only one subscribed)
    ticks: [], // [{price, seq, ts, value}] of `symbol`, increasing seq, at most history_limit
    sequenceSince: 0, // exchange time of the current sequence's first tick seen (after a reset)
    client: null,
    historyToken: 0, // bumps on every switch, so a late history answer for another symbol is ignored
    renderQueued: false,
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

  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

  /** A "nice" time step (ms) so that about `count` labels fit the span. */
  function timeStep(span, count) {
    const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 21600, 43200, 86400];
    const wanted = span / Math.max(1, count) / 1000;
    const s = steps.find((x) => x >= wanted) || steps[steps.length - 1];
    return s * 1000;
  }

  function renderChart() {
    const svg = el("chart");
    const ticks = page.ticks;
    svg.dataset.points = String(ticks.length);
    const W = Math.max(200, Math.round(svg.getBoundingClientRect().width));
    const H = Math.max(120, Math.round(svg.getBoundingClientRect().height));
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);

    if (!ticks.length) {
      svg.innerHTML = `<text class="empty" x="${W / 2}" y="${H / 2}" text-anchor="middle">Waiting for prices…</text>`;
      svg.setAttribute("aria-label", `Price chart of ${page.symbol || ""}: no ticks yet`);
      return;
    }

    const first = ticks[0];
    const last = ticks[ticks.length - 1];
    let lo = ticks[0];
    let hi = ticks[0];
    for (const t of ticks) {
      if (t.value < lo.value) lo = t;
      if (t.value > hi.value) hi = t;
    }
    // Right gutter wide enough for the longest price label (monospaced digits).
    const labelChars = Math.max(hi.price.length, lo.price.length, last.price.length);
    const gutter = Math.round(labelChars * 7.4 + 22);
    const plot = { left: 8, top: 14, right: W - gutter, bottom: H - 26 };

    const span = last.ts - first.ts;
    const x = span > 0 ? (ts) => plot.left + ((ts - first.ts) / span) * (plot.right - plot.left) : () => plot.right;
    const range = hi.value - lo.value;
    const padding = range > 0 ? range * 0.12 : Math.abs(hi.value) * 0.002 || 1;
    const yMin = lo.value - padding;
    const yMax = hi.value + padding;
    const y = (v) => plot.bottom - ((v - yMin) / (yMax - yMin)) * (plot.bottom - plot.top);

    const points = ticks.map((t) => [x(t.ts), y(t.value)]);
    // A step line: a price holds until the next tick replaces it.
    const line = points
      .map(([px, py], i) =>
        i ? `H${px.toFixed(1)}V${py.toFixed(1)}` : `M${px.toFixed(1)},${py.toFixed(1)}`,
      )
      .join("");
    const area = `${line}L${points[points.length - 1][0].toFixed(1)},${plot.bottom}L${points[0][0].toFixed(1)},${plot.bottom}Z`;
    const change = priceChange(first.price, last.price);
    const direction = change ? change.direction : "flat";

    const parts = [];
    parts.push(
      `<defs><linearGradient id="fill" x1="0" y1="0" x2="0" y2="1">` +
        `<stop offset="0" class="fill-top"/><stop offset="1" class="fill-bottom"/></linearGradient></defs>`,
    );

    // Horizontal grid: the window's high and low, labelled with the exchange's own strings.
    const lastY = y(last.value);
    for (const [t, kind] of [
      [hi, "high"],
      [lo, "low"],
    ]) {
      if (kind === "low" && lo === hi) break;
      const gy = y(t.value);
      parts.push(`<line class="grid" x1="${plot.left}" x2="${plot.right}" y1="${gy.toFixed(1)}" y2="${gy.toFixed(1)}"/>`);
      if (Math.abs(gy - lastY) > 18) {
        parts.push(`<text class="axis" x="${plot.right + 8}" y="${(gy + 4).toFixed(1)}">${esc(t.price)}</text>`);
      }
    }

    // Time axis: the window's first and last tick at the ends, "nice" local times between them.
    const labels = [];
    const labelWidth = 60; // "hh:mm:ss" in 12px monospace, plus a little air
    const extent = (px, anchor) =>
      anchor === "start" ? [px, px + labelWidth] : anchor === "end" ? [px - labelWidth, px] : [px - labelWidth / 2, px + labelWidth / 2];
    const fits = (px, anchor) => {
      const [a, b] = extent(px, anchor);
      return labels.every((l) => {
        const [c, d] = extent(l.px, l.anchor);
        return b + 16 <= c || d + 16 <= a;
      });
    };
    const label = (t, px, anchor) => labels.push({ t, px, anchor });
    if (span > 0) {
      label(first.ts, plot.left, "start");
      label(last.ts, plot.right, "end");
      // Candidates at a fine step, placed greedily where they do not collide.
      const step = timeStep(span, Math.max(3, Math.floor((plot.right - plot.left) / 70)));
      const offset = new Date(first.ts).getTimezoneOffset() * 60000; // align steps to local time
      for (let t = Math.ceil((first.ts - offset) / step) * step + offset; t <= last.ts; t += step) {
        const px = x(t);
        const text = clock(t);
        if (fits(px, "middle") && labels.every((l) => clock(l.t) !== text)) label(t, px, "middle");
      }
    } else {
      label(last.ts, plot.right, "end");
    }
    for (const l of labels) {
      if (l.anchor === "middle") {
        parts.push(`<line class="tick" x1="${l.px.toFixed(1)}" x2="${l.px.toFixed(1)}" y1="${plot.bottom}" y2="${plot.bottom + 4}"/>`);
      }
      parts.push(`<text class="axis" x="${l.px.toFixed(1)}" y="${H - 6}" text-anchor="${l.anchor}">${clock(l.t)}</text>`);
    }
    parts.push(`<line class="baseline" x1="${plot.left}" x2="${plot.right}" y1="${plot.bottom}" y2="${plot.bottom}"/>`);

    // The series, its area, and the last price marked on the right axis.
    parts.push(`<path class="area" d="${area}" fill="url(#fill)"/>`);
    parts.push(`<path class="line" d="${line}"/>`);
    const [lx, ly] = points[points.length - 1];
    parts.push(`<line class="last-line" x1="${lx.toFixed(1)}" x2="${plot.right}" y1="${ly.toFixed(1)}" y2="${ly.toFixed(1)}"/>`);
    parts.push(`<circle class="halo" cx="${lx.toFixed(1)}" cy="${ly.toFixed(1)}" r="7"/>`);
    parts.push(`<circle class="dot" cx="${lx.toFixed(1)}" cy="${ly.toFixed(1)}" r="3.5"/>`);
    const pillW = last.price.length * 7.4 + 12;
    parts.push(
      `<g class="pill" transform="translate(${plot.right + 3},${(ly - 10).toFixed(1)})">` +
        `<rect width="${pillW.toFixed(1)}" height="20" rx="5"/>` +
        `<text x="6" y="14">${esc(last.price)}</text></g>`,
    );
    parts.push(`<g class="hover" visibility="hidden"><line class="cross" y1="${plot.top}" y2="${plot.bottom}"/>` +
      `<circle r="4"/><g class="tip"><rect rx="6" height="38"/><text class="tip-price" x="8" y="16"/>` +
      `<text class="tip-time" x="8" y="31"/></g></g>`);

    svg.setAttribute("class", `chart dir-${direction}`);
    svg.innerHTML = parts.join("");
    svg.setAttribute(
      "aria-label",
      `Price chart of ${page.symbol}: ${ticks.length} ticks from ${clock(first.ts)} to ${clock(last.ts)}, ` +
        `low ${lo.price}, high ${hi.price}, last ${last.price}`,
    );
    page.geometry = { points, plot, W };
    if (page.pointer) onPointer(page.pointer); // keep the crosshair where it was
  }

  /** Crosshair with the nearest tick's price and time under the pointer. */
  function onPointer(event) {
    const svg = el("chart");
    const hover = svg.querySelector(".hover");
    const g = page.geometry;
    if (!hover || !g || !page.ticks.length) return;
    if (event.type === "pointerleave") {
      page.pointer = null;
      hover.setAttribute("visibility", "hidden");
      return;
    }
    page.pointer = { type: event.type, clientX: event.clientX };
    const box = svg.getBoundingClientRect();
    const px = ((event.clientX - box.left) / box.width) * g.W;
    let best = 0; // binary search on x, points are sorted by time
    let lo = 0;
    let hi = g.points.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (g.points[mid][0] < px) lo = mid + 1;
      else hi = mid - 1;
    }
    best = lo >= g.points.length ? g.points.length - 1 : lo;
    if (best > 0 && Math.abs(g.points[best - 1][0] - px) < Math.abs(g.points[best][0] - px)) best -= 1;
    const [cx, cy] = g.points[best];
    const tick = page.ticks[best];
    hover.setAttribute("visibility", "visible");
    const cross = hover.querySelector(".cross");
    cross.setAttribute("x1", cx);
    cross.setAttribute("x2", cx);
    const dot = hover.querySelector("circle");
    dot.setAttribute("cx", cx);
    dot.setAttribute("cy", cy);
    hover.querySelector(".tip-price").textContent = tick.price;
    hover.querySelector(".tip-time").textContent = clockMs(tick.ts);
    const width = Math.max(tick.price.length * 7.4, 92) + 16;
    hover.querySelector(".tip rect").setAttribute("width", width);
    const tx = cx + 12 + width > g.plot.right ? cx - 12 - width : cx + 12;
    hover.querySelector(".tip").setAttribute("transform", `translate(${tx},${g.plot.top})`);
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
