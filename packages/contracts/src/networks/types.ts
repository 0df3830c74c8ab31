/** A Digicap deployment on one chain, by name: what a library needs to talk to it. */
export interface DigicapNetwork {
  /** Short name (`local`, or what `registerNetwork` was given). */
  readonly name: string
  /** EIP-155 chain id. */
  readonly chainId: number
  /** A JSON-RPC endpoint that serves this chain (callers may pass their own). */
  readonly rpcUrl: string
  readonly addresses: {
    readonly capsuleRegistry: `0x${string}`
    readonly nodeRegistry: `0x${string}`
    readonly accessController: `0x${string}`
    /** CommitteeSortition and AttestationHub (attested jobs); absent on a network without them. */
    readonly committeeSortition?: `0x${string}`
    readonly attestationHub?: `0x${string}`
  }
  /** Block of the first deployment transaction (start point for event scans). */
  readonly deployBlock: number
}
