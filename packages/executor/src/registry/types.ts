/** A capsule as the CapsuleRegistry lists it. */
export interface RegisteredCapsule {
  readonly owner: string
  readonly policy: string
  readonly cid: string
  readonly revoked: boolean
  /** The plaintext commitment the owner registered (32 bytes). */
  readonly plaintextHash: Uint8Array
}
