/**
 * The one error condition the Datastore contract has no class for: a write whose request reached
 * etcd (or may have) but whose answer was lost, and whose effect could not be settled afterwards.
 */

import { CniCode, CniError, type CniErrorOptions } from "@cnikit/core";

/**
 * Code 11 (try again later), but NOT a `TryAgainError`: the contract promises that a
 * `TryAgainError` wrote nothing, and this error cannot promise that. The write may or may not have
 * been applied (at most once: the client never re-sends it blindly). Read the keys again before
 * deciding what to do; a compare-and-swap loop that re-reads and re-checks is safe.
 *
 * Raised only for writes that cannot be checked afterwards: plain `put`/`delete` without
 * `ifRevision`, transactions without a compare on a key they write, and guarded writes whose compare
 * no longer holds when etcd answers again (someone, possibly this very write, changed the key).
 */
export class OutcomeUnknownError extends CniError {
  /** The etcd endpoint the request was sent to. */
  readonly endpoint: string;
  constructor(endpoint: string, msg: string, options: CniErrorOptions = {}) {
    super(CniCode.TryAgainLater, msg, options);
    this.endpoint = endpoint;
  }
}
