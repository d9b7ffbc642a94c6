// Type-checks against the package's declarations (npm run typecheck): every option, event and state.
import PledgeWSDefault, {
  CLOSE_DEAD,
  type CloseInfo,
  type PledgeWSOptions,
  type Position,
  PledgeWS,
  STATES,
  type State,
  type Tick,
  TERMINAL_CLOSE_CODES,
  closeInfo,
  compareSeq,
  isNewer,
} from "pledge-ws-client";

const options: PledgeWSOptions = {
  url: "wss://prices.example/ws",
  symbols: ["PLGR-USDT"],
  since: { "PLGR-USDT": { seq: "1545896669000", ts: 1704873323416 }, "BTC-USDT": "42" },
  pingInterval: 5000,
  pongTimeout: 4000,
  deadAfter: 10000,
  minReconnectDelay: 500,
  maxReconnectDelay: 30000,
  terminalCodes: [4403],
  autoConnect: false,
  onPrice: (tick: Tick) => tick.price.length,
};
const client: PledgeWS = new PledgeWSDefault(options);
client
  .on("price", (tick) => {
    const price: string = tick.price;
    const ts: number = tick.ts;
    return [price, ts, tick.seq, tick.symbol];
  })
  .on("state", (state: State, detail) => [state === STATES.LIVE, detail.previous, detail.delay])
  .on("open", (info) => info.recovering.concat(info.reconnect ? ["again"] : []))
  .on("error", (reason: string) => reason.toUpperCase())
  .on("recovery", (r) => (r.recovered ? r.count : r.symbol))
  .once("close", (info: CloseInfo) => [info.code, info.reconnect, info.hint.reconnectWindowMs, info.delay]);
client.subscribe(["BTC-USDT"]);
client.unsubscribe("PLGR-USDT");
const saved: Record<string, Position> = client.positions();
new PledgeWS({ since: saved, autoConnect: false });
client.connect();
client.close();
const order: -1 | 0 | 1 = compareSeq("1", "2");
const newer: boolean = isNewer({ seq: "1", ts: null }, { seq: "2", ts: 5 });
const codes: readonly number[] = TERMINAL_CLOSE_CODES;
const dead: 4000 = CLOSE_DEAD;
const parsed: CloseInfo = closeInfo(1001, "server shutting down; reconnect_window_ms=5000");
export { codes, dead, newer, order, parsed };

// @ts-expect-error: an unknown event is a type error
client.on("prices", () => {});
// @ts-expect-error: prices are strings, never numbers
const wrong: number = ({} as Tick).price;
export { wrong };
