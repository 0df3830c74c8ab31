/**
 * The call data of the owner's two transactions in a seal, built without ethers: a policy's
 * creation (its bytecode and the NodeRegistry it reads) and `CapsuleRegistry.register`.
 */
import { concatBytes, hexToBytes } from '@digicap/capsule-core'
import { abiEncodeParams, functionSelector } from './abi-encode.ts'

/** `CapsuleRegistry.register`'s signature (checked against the ABI in the tests). */
export const REGISTER_CAPSULE_SIGNATURE = 'register(bytes32,address,string,bytes32,bytes,bytes32)'

/** What `CapsuleRegistry.register` records. */
export interface CapsuleRegistrationCall {
  /** The capsule id, 32 bytes. */
  readonly capsuleId: Uint8Array
  readonly policy: string
  readonly cid: string
  /** The header's plaintext commitment, 32 bytes. */
  readonly plaintextCommitment: Uint8Array
  /** The keyguard's libp2p peer id, as the registry stores it (its string form's bytes). */
  readonly keyguardPeerId: Uint8Array
  /** The keyguard wrapping key's id, 32 bytes. */
  readonly keyguardKeyId: Uint8Array
}

/**
 * The call data of `CapsuleRegistry.register(...)`.
 *
 * @example
 * ```ts
 * await transactor.send({ to: capsuleRegistry, data: registerCapsuleCallData(entry) })
 * ```
 */
export function registerCapsuleCallData(call: CapsuleRegistrationCall): Uint8Array {
  return concatBytes(
    functionSelector(REGISTER_CAPSULE_SIGNATURE),
    abiEncodeParams([
      { type: 'bytes32', value: call.capsuleId },
      { type: 'address', value: call.policy },
      { type: 'string', value: call.cid },
      { type: 'bytes32', value: call.plaintextCommitment },
      { type: 'bytes', value: call.keyguardPeerId },
      { type: 'bytes32', value: call.keyguardKeyId },
    ]),
  )
}

/**
 * The creation data of a compiled policy: its bytecode, then its constructor's one argument,
 * the NodeRegistry it reads reputation and registration from.
 */
export function policyCreationData(bytecode: string, nodeRegistry: string): Uint8Array {
  return concatBytes(
    hexToBytes(bytecode, { name: 'bytecode' }),
    abiEncodeParams([{ type: 'address', value: nodeRegistry }]),
  )
}
