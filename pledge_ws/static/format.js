/*
 * The page's text, pure: exact decimal arithmetic on price strings (BigInt, never floats) and
 * the clock, duration and state labels. No DOM; app.js and chart.js import it.
 */
/** "0.002700" -> {units: 2700n, scale: 6}; null for anything that is not a plain decimal. */
export function parseDecimal(text) {
  const m = /^(\d*)(?:\.(\d*))?$/.exec(String(text).trim());
  if (!m || (m[1] === "" && !m[2])) return null;
  const frac = m[2] || "";
  return { units: BigInt((m[1] || "0") + frac), scale: frac.length };
}

/** Express a decimal with `scale` fractional digits (scale >= its own). */
export const rescale = (d, scale) => d.units * 10n ** BigInt(scale - d.scale);

/** BigInt units at `scale` -> "1.2300" (sign included when `signed`). */
export function formatUnits(units, scale, signed) {
  const negative = units < 0n;
  let digits = (negative ? -units : units).toString().padStart(scale + 1, "0");
  if (scale > 0) digits = digits.slice(0, -scale) + "." + digits.slice(-scale);
  return (negative ? "-" : signed && units > 0n ? "+" : "") + digits;
}

/** n / d rounded half away from zero (d > 0). */
export function divRound(n, d) {
  const q = n / d;
  const r = n % d;
  if (2n * (r < 0n ? -r : r) >= d) return q + (n < 0n ? -1n : 1n);
  return q;
}

/**
 * Change from `first` to `last`, both price strings: the exact difference (at the larger of
 * their scales) and the percentage to two decimals, computed on integers, never on floats.
 */
export function priceChange(first, last) {
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


export const pad = (n, width = 2) => String(n).padStart(width, "0");
export const clock = (ms, withSeconds = true) => {
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}` + (withSeconds ? `:${pad(d.getSeconds())}` : "");
};
export const clockMs = (ms) => `${clock(ms)}.${pad(new Date(ms).getMilliseconds(), 3)}`;

export function duration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 && s < 600 ? ` ${s % 60} s` : ""}`;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return m ? `${h} h ${m} min` : `${h} h`;
}

export const STATE_TEXT = {
  connecting: "Connecting…",
  live: "Live",
  stale: "Stale",
  reconnecting: "Reconnecting…",
  closed: "Closed",
};
