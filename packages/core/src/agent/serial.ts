/**
 * Per-key serialisation: calls with the same key run one after another, in call order; calls with
 * different keys run concurrently. The CNI contract asks exactly this of ADD/DEL/CHECK for one
 * attachment `(containerId, ifName)`.
 */
export class KeyedSerializer {
  private readonly tails = new Map<string, Promise<unknown>>();

  /**
   * Runs `fn` after every earlier call with the same `key` has settled (whatever its outcome).
   * Resolves or rejects as `fn` does.
   */
  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const before = this.tails.get(key) ?? Promise.resolve();
    const result = before.then(fn, fn);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }

  /** Keys with a call queued or running. */
  get busy(): number {
    return this.tails.size;
  }
}
