/*
 * The price chart, drawn as SVG from the page's ticks: a step line (a price holds until the
 * next tick), the window's high and low, local-time labels that never collide, the last price
 * on the right axis, and a crosshair. No state of its own: app.js passes what to draw.
 */
import { clock, clockMs, priceChange } from "./format.js";

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** A "nice" time step (ms) so that about `count` labels fit the span. */
function timeStep(span, count) {
  const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 21600, 43200, 86400];
  const wanted = span / Math.max(1, count) / 1000;
  const s = steps.find((x) => x >= wanted) || steps[steps.length - 1];
  return s * 1000;
}

/**
 * Draw `ticks` (increasing seq) of `symbol` into the SVG `svg`; the geometry the crosshair
 * needs ({points, plot, W}), or null when there is nothing to draw.
 */
export function drawChart(svg, ticks, symbol) {
  svg.dataset.points = String(ticks.length);
  const W = Math.max(200, Math.round(svg.getBoundingClientRect().width));
  const H = Math.max(120, Math.round(svg.getBoundingClientRect().height));
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);

  if (!ticks.length) {
    svg.innerHTML = `<text class="empty" x="${W / 2}" y="${H / 2}" text-anchor="middle">Waiting for prices…</text>`;
    svg.setAttribute("aria-label", `Price chart of ${symbol || ""}: no ticks yet`);
    return null;
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
    `Price chart of ${symbol}: ${ticks.length} ticks from ${clock(first.ts)} to ${clock(last.ts)}, ` +
      `low ${lo.price}, high ${hi.price}, last ${last.price}`,
  );
  return { points, plot, W };
}

/** The crosshair on the tick nearest to `clientX` (null: hidden), with its price and time. */
export function showCrosshair(svg, g, ticks, clientX) {
  const hover = svg.querySelector(".hover");
  if (!hover || !g || !ticks.length) return;
  if (clientX === null) {
    hover.setAttribute("visibility", "hidden");
    return;
  }
  const box = svg.getBoundingClientRect();
  const px = ((clientX - box.left) / box.width) * g.W;
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
  const tick = ticks[best];
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
