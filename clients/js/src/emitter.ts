/**
 * A minimal typed event emitter (no Node `events` dependency, so the client runs in
 * browsers unchanged). A throwing listener never breaks the client: the error is
 * reported on the console and the other listeners still run.
 */

/** Maps event names to the listener's argument. */
export type EventMap = Record<string, unknown>;

/** Subscribe with `on`, emit with `emit`; `on` returns the function that removes the listener. */
export class Emitter<E extends EventMap> {
  private readonly listeners = new Map<keyof E, Set<(arg: never) => void>>();

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof E>(event: K, listener: (arg: E[K]) => void): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(listener as (arg: never) => void);
    return () => this.off(event, listener);
  }

  /** Removes a listener added with {@link on}. */
  off<K extends keyof E>(event: K, listener: (arg: E[K]) => void): void {
    this.listeners.get(event)?.delete(listener as (arg: never) => void);
  }

  /** Calls every listener of `event` with `arg`. */
  protected emit<K extends keyof E>(event: K, arg: E[K]): void {
    for (const l of [...(this.listeners.get(event) ?? [])]) {
      try {
        (l as (arg: E[K]) => void)(arg);
      } catch (e) {
        console.error(`roomcast: a "${String(event)}" listener threw`, e);
      }
    }
  }
}
