/**
 * Per-room recovery state: the last position delivered, the handlers, and the dedupe
 * rule that makes replay + live delivery exactly-once and in order.
 *
 * Invariants:
 * - `position` only moves forward within an epoch, and only through a delivered event, a
 *   snapshot, the client's own acked publish, or a `recovery_failed` (which names the
 *   point the room continues from). An `ack` of a resubscribe never moves it: the replay
 *   that follows the ack does.
 * - An event at or below `position` is a duplicate (a replay overlapping live delivery)
 *   and is dropped. Sequences keep growing across an epoch change after a crash, and a
 *   history reset is announced by `recovery_failed`, which resets `position` first.
 * - A snapshot (`*_snapshot`) replaces the position whatever it was: it is the new truth.
 */
import type { Position, RecoveryFailed, RoomEvent } from "./types.js";

/** A room event handler. */
export type Handler = (event: RoomEvent) => void;

/** Most own acked sequences remembered per room before the oldest are forgotten. */
const MAX_OWN = 10_000;

/** Everything the client knows about one room. */
export class RoomState {
  position: Position | undefined;
  readonly handlers = new Set<Handler>();
  readonly recoveryFailedHandlers = new Set<(info: RecoveryFailed) => void>();
  /** Sequences of this client's own publishes: the server never echoes them back to the sender. */
  private readonly own = new Set<number>();

  constructor(
    readonly room: string,
    since?: Position,
  ) {
    this.position = since ? { ...since } : undefined;
  }

  /** Applies one event: returns false (and calls nobody) for a duplicate. */
  deliver(ev: RoomEvent): boolean {
    const isSnapshot = ev.type.endsWith("_snapshot");
    if (!isSnapshot && this.position && ev.sequence <= this.position.sequence) return false;
    this.position = { sequence: ev.sequence, epoch: ev.epoch };
    this.settle();
    for (const h of [...this.handlers]) {
      try {
        h(ev);
      } catch (e) {
        console.error(`roomcast: a handler of room ${this.room} threw`, e);
      }
    }
    return true;
  }

  /** Adopts the position of a subscribe ack when nothing is known yet. */
  adoptAck(sequence: number, epoch: string): void {
    if (!this.position) this.position = { sequence, epoch };
    this.settle();
  }

  /** Records the ack of our own publish, so a replay does not hand it back to us. */
  ownPublish(sequence: number, epoch: string): void {
    if (!this.position || this.position.epoch !== epoch) return;
    if (this.own.size >= MAX_OWN) this.own.clear();
    this.own.add(sequence);
    this.settle();
  }

  /** The room continues from `info`'s position (history could not cover the gap). */
  recoveryFailed(info: RecoveryFailed): void {
    this.position = { sequence: info.sequence, epoch: info.epoch };
    this.own.clear();
    for (const h of [...this.recoveryFailedHandlers]) h(info);
  }

  /** Skips over our own publishes that directly follow the position. */
  private settle(): void {
    const p = this.position;
    if (!p) return;
    while (this.own.delete(p.sequence + 1)) p.sequence += 1;
    for (const s of this.own) if (s <= p.sequence) this.own.delete(s);
  }
}

/** The handle `subscribe` returns. */
export interface Subscription {
  /** The room. */
  readonly room: string;
  /** Resolves with the first ack of the room (its position), rejects if the server refuses it. */
  readonly ready: Promise<void>;
  /** The last position delivered to the handlers (what a resume starts from). */
  readonly position: Position | undefined;
  /** Removes this handler; the room is left when its last handler goes. */
  unsubscribe(): Promise<void>;
}
