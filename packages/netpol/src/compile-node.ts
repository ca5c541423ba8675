/**
 * One node's compilation as a user runs it: the NodeDataplane filters and the nftables ruleset from
 * one analysis, with the warnings of `compileWarnings` (e.g. a node that no pod names, where the
 * result enforces nothing). Agents, whose node may well have no pods yet, use `compileFilters` /
 * `compileNodeFilters` and `NftNodeCompiler`, which do not warn.
 */
import type { FilterPolicy } from "@cnikit/core";
import { compileFilters, compileWarnings, indexPolicies, type CompileWarning } from "./compile.ts";
import { compileNft, type NftCompileInput, type NftRuleset } from "./nft.ts";

/** What `compileNode` returns. */
export interface NodeCompilation {
  /** `compileFilters` of the input. */
  filters: FilterPolicy[];
  /** `compileNft` of the input (`renderNft` prints it). */
  nft: NftRuleset;
  /** Empty when the compilation is what it looks like; see `CompileWarning`. */
  warnings: CompileWarning[];
}

/**
 * Compiles `input.model` for `input.node`: filters, nftables ruleset and warnings. Pure.
 * @throws ConfigError for an invalid address in the model or `nodeAddresses`.
 */
export function compileNode(input: NftCompileInput): NodeCompilation {
  const index = indexPolicies(input.model);
  return { filters: compileFilters(input, index), nft: compileNft(input, index), warnings: compileWarnings(input) };
}
