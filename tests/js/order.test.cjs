// The reference client's "newer" rule against the server's table of cases (tests/data/order_cases.json).
const test = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");
const fs = require("node:fs");

const PledgeWS = require("../../pledge_ws/static/pledge-ws.js");
const table = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "data", "order_cases.json"), "utf8"));

for (const c of table.cases) {
  test(c.why, () => {
    assert.equal(PledgeWS.isNewer(c.last || undefined, c.next), c.newer);
  });
}
