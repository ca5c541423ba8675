/**
 * The runtime's two locks (cni.md checklist 47: no GC during ADD/DEL, no parallel operations on one
 * container): a mutex per container id, and a shared/exclusive gate that every container operation
 * holds shared and GC holds exclusively. Container operations take their container's mutex first,
 * then the gate; GC takes only the gate, so there is no lock-order cycle. A waiting GC is served
 * before operations that arrive after it, so a steady stream of ADDs cannot starve it.
 * In-process only: two runtimes (or processes) sharing a cache directory are not serialized.
 */

/** FIFO mutual exclusion per key. */
export class KeyedMutex {
  private readonly tails = new Map<string, Promise<void>>();

  /** Runs `fn` once every earlier `run` with the same key has settled; other keys run in parallel. */
  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => mine);
    this.tails.set(key, tail);
    await previous;
    try {
      return await fn();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }

  /** How many keys have an operation running or queued (for tests and diagnostics). */
  get busyKeys(): number {
    return this.tails.size;
  }
}

interface Waiter {
  exclusive: boolean;
  grant: () => void;
}

/** Many shared holders or one exclusive holder; FIFO, so a queued exclusive blocks later shared ones. */
export class SharedExclusiveGate {
  private shared = 0;
  private exclusive = false;
  private readonly queue: Waiter[] = [];

  /** Runs `fn` while holding the gate shared. */
  async withShared<T>(fn: () => Promise<T>): Promise<T> {
    await this.acquire(false);
    try {
      return await fn();
    } finally {
      this.shared--;
      this.drain();
    }
  }

  /** Runs `fn` while holding the gate exclusively (no shared holder runs meanwhile). */
  async withExclusive<T>(fn: () => Promise<T>): Promise<T> {
    await this.acquire(true);
    try {
      return await fn();
    } finally {
      this.exclusive = false;
      this.drain();
    }
  }

  private acquire(exclusive: boolean): Promise<void> {
    if (this.queue.length === 0 && this.grantable(exclusive)) {
      this.take(exclusive);
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => this.queue.push({ exclusive, grant: resolve }));
  }

  private grantable(exclusive: boolean): boolean {
    return exclusive ? !this.exclusive && this.shared === 0 : !this.exclusive;
  }

  private take(exclusive: boolean): void {
    if (exclusive) this.exclusive = true;
    else this.shared++;
  }

  private drain(): void {
    while (this.queue.length > 0) {
      const head = this.queue[0]!;
      if (!this.grantable(head.exclusive)) return;
      this.queue.shift();
      this.take(head.exclusive);
      head.grant();
      if (head.exclusive) return;
    }
  }
}
