// The client's "newer" rule against the server's own table of cases (tests/data/order_cases.json).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";

import { isNewer, closeInfo, compareSeq } from "../src/pledge-ws.js";
import { ROOT } from "./support.js";

const table = JSON.parse(readFileSync(path.join(ROOT, "tests", "data", "order_cases.json"), "utf8"));

for (const c of table.cases) {
  test(`newer: ${c.why}`, () => {
    assert.equal(isNewer(c.last || undefined, c.next), c.newer);
  });
}

test("a position saved without its time only moves forward", () => {
  assert.equal(isNewer({ seq: "100", ts: null }, { seq: "1", ts: 1e13 }), false);
  assert.equal(isNewer({ seq: "100", ts: null }, { seq: "101", ts: 1 }), true);
});

test("sequences compare as numbers of any length", () => {
  assert.equal(compareSeq("0099", "100"), -1);
  assert.equal(compareSeq("12345678901234567891", "12345678901234567890"), 1);
});

test("a close reason's hint is structured, and terminal codes do not reconnect", () => {
  assert.deepEqual(closeInfo(1001, "server shutting down; reconnect_window_ms=5000"), {
    code: 1001,
    reason: "server shutting down",
    reconnect: true,
    hint: { reconnectWindowMs: 5000 },
  });
  assert.equal(closeInfo(1009, "message too big").reconnect, false);
  assert.equal(closeInfo(1003).reconnect, false);
  assert.equal(closeInfo(1006).reconnect, true);
  assert.deepEqual(closeInfo(1000, "heartbeat timeout").hint, {});
});
