// Types of pledge-ws-client (src/pledge-ws.js). The protocol: docs/protocol.md of pledge-ws.

/** Connection states, in the order a client usually sees them. */
export type State = "connecting" | "live" | "stale" | "reconnecting" | "closed";

export declare const STATES: Readonly<{
  CONNECTING: "connecting";
  LIVE: "live";
  STALE: "stale";
  RECONNECTING: "reconnecting";
  CLOSED: "closed";
}>;

/** Close codes after which the client does not reconnect (1002, 1003, 1009). */
export declare const TERMINAL_CLOSE_CODES: readonly number[];
/** The client's own close code when the server stopped answering pings. */
export declare const CLOSE_DEAD: 4000;
/** A lower seq this long (ms of exchange time) after the last one is a restarted sequence. */
export declare const RESET_AFTER_MS: 30000;

/** One price, exactly as the exchange sent it: `price` and `seq` are strings, `ts` ms. */
export interface Tick {
  symbol: string;
  price: string;
  seq: string;
  ts: number;
}

/** Where a symbol's stream stands: what positions() returns and `since` accepts. */
export interface Position {
  seq: string;
  /** The exchange time of that price; null when unknown (a seq saved on its own). */
  ts: number | null;
}

export type Since = Record<string, Position | string> | string;

export interface StateDetail {
  previous: State | null;
  /** ms until the next attempt ("reconnecting"). */
  delay?: number;
  attempt?: number;
  /** Why the connection is being re-opened, e.g. "closed 1006". */
  why?: string;
  /** "price feed interrupted" when the server said its prices are not current ("stale"). */
  reason?: string;
  /** ms without any frame ("stale" after an unanswered ping). */
  silentMs?: number;
  /** The close code that ended the client ("closed" by a terminal code). */
  code?: number;
}

export interface OpenInfo {
  /** false for the first connection, true for every later one. */
  reconnect: boolean;
  url: string;
  /** Symbols whose missed prices this connection asked for (since=). */
  recovering: string[];
}

export interface RecoveryInfo {
  symbol: string;
  /** false: the server could not prove the gap closed; re-read /price/history to fill a chart. */
  recovered: boolean;
  /** Prices replayed (0 when not recovered). */
  count: number;
}

/** What the server's close reason carries, parsed. */
export interface CloseHint {
  /** Spread the reconnect uniformly over this many ms (a server going away, 1001). */
  reconnectWindowMs?: number;
}

export interface CloseInfo {
  code: number;
  /** The reason's text, without its parameters. */
  reason: string;
  /** Whether the client will reconnect (false after close() or a terminal code). */
  reconnect: boolean;
  hint: CloseHint;
  /** ms until the next attempt, or null when it will not reconnect. */
  delay?: number | null;
}

export interface EventMap {
  price: (tick: Tick) => void;
  state: (state: State, detail: StateDetail) => void;
  open: (info: OpenInfo) => void;
  /** A code -1 frame from the server, e.g. "heartbeat timeout". */
  error: (reason: string) => void;
  recovery: (info: RecoveryInfo) => void;
  close: (info: CloseInfo) => void;
}

/** The subset of the WebSocket API the client uses (the browser's, or the ws package's). */
export interface WebSocketLike {
  readonly readyState: number;
  readonly url: string;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface PledgeWSOptions {
  /** ws(s)://, http(s):// or a path on the page's host. Default "/ws". */
  url?: string;
  /** Subscribed at connect time (/ws?symbols=...); empty: the server's primary symbol. */
  symbols?: string[];
  /** Positions to resume from (positions() of an earlier client): the first connect recovers. */
  since?: Since;
  /** ms between pings; keep it well inside the server's heartbeat timeout. Default 5000. */
  pingInterval?: number;
  /** ms without any frame after a ping before "stale". Default min(pingInterval, 4000). */
  pongTimeout?: number;
  /** Further ms of silence before the socket is dropped. Default 2 * pingInterval. */
  deadAfter?: number;
  /** ms, the first reconnect ceiling (full jitter). Default 500. */
  minReconnectDelay?: number;
  /** ms, the largest reconnect ceiling. Default 30000. */
  maxReconnectDelay?: number;
  /** Earlier names of minReconnectDelay and maxReconnectDelay. */
  backoffBase?: number;
  backoffCap?: number;
  /** More close codes after which not to reconnect (added to TERMINAL_CLOSE_CODES). */
  terminalCodes?: number[];
  /** Connect in the constructor. Default true. */
  autoConnect?: boolean;
  /** A WebSocket implementation (Node: the ws package). Default globalThis.WebSocket. */
  WebSocket?: WebSocketConstructor;
  onPrice?: EventMap["price"];
  onState?: EventMap["state"];
  onOpen?: EventMap["open"];
  onError?: EventMap["error"];
  onRecovery?: EventMap["recovery"];
}

export declare function compareSeq(a: string | number, b: string | number): -1 | 0 | 1;
export declare function isNewer(
  last: Position | undefined,
  next: { seq: string | number; ts: number | string },
): boolean;
export declare function closeInfo(code: number, reason?: string): CloseInfo;

export declare class PledgeWS {
  constructor(options?: PledgeWSOptions);
  readonly url: URL;
  readonly symbols: Set<string>;
  state: State | null;
  on<E extends keyof EventMap>(event: E, fn: EventMap[E]): this;
  off<E extends keyof EventMap>(event: E, fn: EventMap[E]): this;
  once<E extends keyof EventMap>(event: E, fn: EventMap[E]): this;
  positions(): Record<string, Position>;
  connect(): void;
  subscribe(symbols: string | string[]): void;
  unsubscribe(symbols: string | string[]): void;
  close(): void;
  static readonly STATES: typeof STATES;
  static compareSeq: typeof compareSeq;
  static isNewer: typeof isNewer;
}

export default PledgeWS;
