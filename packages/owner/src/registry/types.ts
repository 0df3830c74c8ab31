/** What records a sealed capsule on chain. */

export interface CapsuleRegistration {
  /** 0x-prefixed 32-byte capsule id. */
  capsuleId: `0x${string}`
  policy: `0x${string}`
  cid: string
  /** The header's plaintext commitment. */
  plaintextCommitment: Uint8Array
  /** The keyguard's libp2p peer id (string form). */
  keyguardPeerId: string
  /** The keyguard wrapping key's id (lowercase hex, no 0x). */
  keyguardKeyId: string
}

export interface CapsuleRegistrar {
  /**
   * Registers the capsule from the owner account and waits for the receipt.
   * @throws the chain's decoded revert (`ContractRevertError`) or the RPC's error.
   */
  register(entry: CapsuleRegistration): Promise<{ transactionHash: string }>
  /**
   * The capsule's owner on chain (`CapsuleRegistry.ownerOf`; the zero address when unknown).
   * `sealAndPublish` asks it after a `CapsuleExists` revert: the key record is removed only
   * when the id is someone else's.
   */
  ownerOf?(capsuleId: `0x${string}`): Promise<string>
}

/** The three Digicap contract addresses the owner's transactions go to. */
export interface ChainContracts {
  capsuleRegistry: string
  nodeRegistry: string
  accessController: string
}
