/**
 * Reconnect delays: exponential backoff with full jitter (AWS architecture blog,
 * "Exponential Backoff And Jitter"): attempt n waits a uniform random time in
 * `[0, min(cap, base * 2^n))`. Full jitter spreads a crowd of clients that lost the same
 * server over the whole window, so a restarted server is not hit by all of them at once.
 */

/** Tuning of {@link Backoff}. */
export interface BackoffOptions {
  /** Window of the first retry, ms (default 500). */
  baseMs?: number;
  /** Largest window, ms (default 30000). */
  capMs?: number;
  /** Give up after this many consecutive failed attempts (default: never). */
  maxAttempts?: number;
  /** Source of randomness in [0, 1) (default `Math.random`); tests pin it. */
  random?: () => number;
}

/** Counts consecutive failures and yields the next delay. */
export class Backoff {
  readonly baseMs: number;
  readonly capMs: number;
  readonly maxAttempts: number;
  private readonly random: () => number;
  private failures = 0;

  constructor(opts: BackoffOptions = {}) {
    this.baseMs = opts.baseMs ?? 500;
    this.capMs = opts.capMs ?? 30_000;
    this.maxAttempts = opts.maxAttempts ?? Infinity;
    this.random = opts.random ?? Math.random;
    if (!(this.baseMs > 0) || !(this.capMs >= this.baseMs)) {
      throw new RangeError("backoff needs 0 < baseMs <= capMs");
    }
  }

  /** Consecutive failures so far. */
  get attempts(): number {
    return this.failures;
  }

  /** The upper bound of the window for failure number `n` (0-based). */
  window(n: number): number {
    // 2^n overflows to Infinity for large n; min() keeps it at the cap.
    return Math.min(this.capMs, this.baseMs * 2 ** n);
  }

  /** Records a failure and returns the delay before the next attempt, or `null` when out of attempts. */
  next(): number | null {
    if (this.failures >= this.maxAttempts) return null;
    const delay = Math.floor(this.random() * this.window(this.failures));
    this.failures += 1;
    return delay;
  }

  /** Forgets the failures (called once a connection has stayed up long enough). */
  reset(): void {
    this.failures = 0;
  }
}
