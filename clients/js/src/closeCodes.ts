/**
 * What the client does after each close code. The one place that decides whether a
 * closed connection is retried; docs/CLIENTS.md renders this table.
 */

/** What happens after a close: retry with backoff, stop for good, or retry only with a new token. */
export type CloseAction = "reconnect" | "stop" | "reauth";

/** One row of the table. */
export interface CloseRule {
  readonly name: string;
  readonly action: CloseAction;
}

/** Every close code roomcast sends, plus the transport's own (1005, 1006). */
export const CLOSE_CODES: Readonly<Record<number, CloseRule>> = {
  1000: { name: "NORMAL", action: "reconnect" },
  1001: { name: "GOING_AWAY", action: "reconnect" },
  1002: { name: "PROTOCOL_ERROR", action: "reconnect" },
  1003: { name: "UNSUPPORTED_DATA", action: "stop" },
  1005: { name: "NO_STATUS", action: "reconnect" },
  1006: { name: "ABNORMAL (connection lost)", action: "reconnect" },
  1007: { name: "INVALID_PAYLOAD", action: "stop" },
  1008: { name: "POLICY_VIOLATION (slow consumer)", action: "reconnect" },
  1009: { name: "MESSAGE_TOO_BIG", action: "reconnect" },
  1011: { name: "INTERNAL_ERROR", action: "reconnect" },
  4001: { name: "UNAUTHORIZED", action: "reauth" },
  4002: { name: "INVALID_TOKEN", action: "reauth" },
  4003: { name: "TOKEN_EXPIRED", action: "reauth" },
  4004: { name: "AUTH_TIMEOUT", action: "reauth" },
  4011: { name: "SESSION_SUPERSEDED", action: "stop" },
  4012: { name: "SESSION_EXPIRED", action: "reauth" },
  4021: { name: "RATE_LIMITED", action: "reconnect" },
  4022: { name: "TOO_MANY_CONNECTIONS", action: "stop" },
  4031: { name: "INVALID_SUBSCRIPTION", action: "stop" },
  4032: { name: "MARKET_CLOSED", action: "reconnect" },
  4091: { name: "SERVER_SHUTDOWN", action: "reconnect" },
  4092: { name: "SERVER_ERROR", action: "reconnect" },
};

/** The action for `code`; codes not in the table are retried with backoff. */
export function closeAction(code: number): CloseAction {
  return CLOSE_CODES[code]?.action ?? "reconnect";
}
