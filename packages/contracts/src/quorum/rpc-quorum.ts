/**
 * The `RpcQuorum` interface: reads that several RPCs of one chain must agree on, pinned to one
 * block so that honest RPCs a block apart still agree. The ethers implementation is
 * `createRpcQuorum` (ethers-rpc-quorum.ts).
 */
import type { JsonRpcApiProvider } from 'ethers'

/** The block every pinned read runs at: a number and the hash a quorum of RPCs agreed on. */
export interface PinnedBlock {
  readonly number: number
  readonly hash: string
}

/** One RPC that answered otherwise than the quorum, or not at all. */
export interface Dissent {
  /** `#<index> <host>`: never the URL's path or query, which may hold an API key. */
  readonly rpc: string
  readonly index: number
  /** `differs`: a well-formed other answer (a liar or a fork); `failed`: an error or no block. */
  readonly kind: 'differs' | 'failed'
  /** The error's code or message for `failed`. */
  readonly error?: string
  /** When no answer won: which answer this RPC gave (RPCs with the same number agreed). */
  readonly answer?: number
}

/** Told when a quorum answered although some RPCs dissented (a liar among honest RPCs). */
export interface DisagreementEvent {
  readonly operation: string
  /** The pinned block number, when the read was pinned. */
  readonly block?: number
  readonly dissent: readonly Dissent[]
}

export interface RpcQuorumInit {
  /** The RPCs of one chain (use `createProvider`). */
  readonly providers: readonly JsonRpcApiProvider[]
  /** How many must return the same answer. Default: 1 for one provider, else a majority. */
  readonly quorum?: number
  /**
   * How long one pinned block serves reads, ms (default 1000). After half of it a read starts
   * a refresh in the background, so a steady stream of reads never waits for one.
   */
  readonly pinMaxAgeMs?: number
  /**
   * How pinned reads name their block: `hash` (EIP-1898, default: every RPC answers for exactly
   * the agreed block or fails) or `number` (for RPCs that refuse a hash; the hash was agreed
   * when pinning, so a reorg in between shows up as a disagreement).
   */
  readonly pinBy?: 'hash' | 'number'
  /**
   * How many blocks below the quorum's head the pin may sit so that slower RPCs can answer
   * too (default 2). An RPC further behind is left out (its reads count as failed); a liar
   * reporting an old head can hold the pin back this far at most.
   */
  readonly maxLag?: number
  /** Told when a quorum answered but some RPCs dissented (log it: one of them lies or lags). */
  readonly onDisagreement?: (event: DisagreementEvent) => void
}

/** What a pinned read gets: the RPC and the block tag to pass as ethers' `blockTag`. */
export interface PinnedReadContext {
  readonly provider: JsonRpcApiProvider
  readonly index: number
  /** The pinned block's hash (or number); `latest` when there is one RPC. */
  readonly blockTag: string | number
}

/**
 * Reads through several RPCs. With one RPC every read goes straight to it at `latest` (nothing
 * to compare, no extra round trip).
 */
export interface RpcQuorum {
  readonly size: number
  readonly quorum: number
  readonly providers: readonly JsonRpcApiProvider[]
  /** `#<index> <host>` of each RPC, as errors and events name them. */
  readonly names: readonly string[]
  /**
   * Runs `read` on every RPC at the pinned block and returns the answer at least `quorum`
   * returned (compared by `key`, default a JSON form that keeps bigints).
   * @throws {QuorumError} when no answer reaches the quorum; `details.dissent` names the RPCs.
   */
  read<T>(
    operation: string,
    read: (context: PinnedReadContext) => Promise<T>,
    key?: (value: T) => string,
  ): Promise<T>
  /** The same, unpinned: for reads that name their own block or none (`eth_chainId`). */
  agree<T>(
    operation: string,
    read: (provider: JsonRpcApiProvider, index: number) => Promise<T>,
    key?: (value: T) => string,
  ): Promise<T>
  /** The newest block at least `quorum` RPCs report (the quorum-th highest head), unpinned. */
  head(): Promise<number>
  /**
   * The block pinned reads run at, refreshed when older than `pinMaxAgeMs` or below the floor.
   * @throws {QuorumError} when fewer than `quorum` RPCs agree on a recent block's hash.
   */
  pin(): Promise<PinnedBlock>
  /**
   * Tells the quorum that state up to `block` matters (an own transaction's receipt, a log
   * the caller acts on): the pin moves to `block` or later as soon as a quorum has it, and
   * pinned reads wait for that move.
   */
  notice(block: number): void
}
