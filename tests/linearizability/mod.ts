/**
 * Linearizability checking of recorded key-value client histories: `checkHistory()` judges a
 * history of single-key puts, gets, deletes and compare-and-set txns (each key on its own), and
 * `randomLinearizableHistory()` builds histories that are linearizable by construction.
 *
 * Multi-key transactions are out of scope: the check splits the history per key, which is
 * valid only while every operation touches one key.
 *
 * @module
 */
export {
  checkHistory,
  type CheckOptions,
  type CheckResult,
  type Counterexample,
  type DeleteOperation,
  describeOperation,
  describeResult,
  type GetOperation,
  InvalidHistoryError,
  type Operation,
  type PutOperation,
  type TxnOperation,
} from "./checker.ts";
export {
  mutateOneRead,
  type RandomHistoryOptions,
  randomLinearizableHistory,
  type RandomSource,
} from "./random_history.ts";
