/**
 * Keys derived from the data key (SPEC.md §4.3, §6.1). All use HKDF-SHA256 with the
 * capsule id as salt and a distinct label as info, so no derived key equals another.
 */
import { createHmac, type Hmac, hkdfSync, randomBytes } from 'node:crypto'
import { checkBytes } from './bytes.ts'

/** Length of a data key: 32 bytes (AES-256). */
export const DATA_KEY_LENGTH = 32

/** HKDF info of the payload key for cipher suite 1. */
export const PAYLOAD_KEY_LABEL = 'digicap/v1 payload aes-256-gcm-stream'
/** HKDF info of the plaintext commitment key. */
export const COMMITMENT_KEY_LABEL = 'digicap/v1 plaintext commitment hmac-sha256'
/** HKDF info of the key commitment value stored in the header. */
export const KEY_COMMITMENT_LABEL = 'digicap/v1 key commitment'

function derive(dataKey: Uint8Array, capsuleId: Uint8Array, label: string): Uint8Array {
  checkBytes('dataKey', dataKey, DATA_KEY_LENGTH)
  checkBytes('capsuleId', capsuleId, 32)
  return new Uint8Array(hkdfSync('sha256', dataKey, capsuleId, label, 32))
}

/** The HMAC key of the plaintext commitment (SPEC.md §4.3). */
export function deriveCommitmentKey(dataKey: Uint8Array, capsuleId: Uint8Array): Uint8Array {
  return derive(dataKey, capsuleId, COMMITMENT_KEY_LABEL)
}

export function derivePayloadKey(dataKey: Uint8Array, capsuleId: Uint8Array): Uint8Array {
  return derive(dataKey, capsuleId, PAYLOAD_KEY_LABEL)
}

/**
 * The 32-byte key commitment stored in the header: HKDF-SHA256(dataKey, capsuleId,
 * "digicap/v1 key commitment"). Lets an opener reject a wrong key before any chunk, and
 * makes the payload key-committing (SPEC.md §6.1).
 */
export function keyCommitment(dataKey: Uint8Array, capsuleId: Uint8Array): Uint8Array {
  return derive(dataKey, capsuleId, KEY_COMMITMENT_LABEL)
}

/** Incremental plaintext commitment. */
export interface PlaintextCommitter {
  /** Feeds the next plaintext bytes. */
  update(bytes: Uint8Array): void
  /** Finishes; returns the byte count and the 32-byte commitment. */
  digest(): { plaintextSize: number; plaintextCommitment: Uint8Array }
}

/**
 * Starts an incremental plaintext commitment: HMAC-SHA256 under
 * HKDF-SHA256(dataKey, capsuleId, "digicap/v1 plaintext commitment hmac-sha256").
 * Use it to build a header for a stream without holding the stream in memory.
 *
 * @throws {InvalidArgumentError} for a data key or capsule id of the wrong length.
 * @example
 * ```ts
 * const c = createPlaintextCommitment(dataKey, capsuleId)
 * for await (const piece of fs.createReadStream(path)) c.update(piece)
 * const { plaintextSize, plaintextCommitment } = c.digest()
 * ```
 */
export function createPlaintextCommitment(
  dataKey: Uint8Array,
  capsuleId: Uint8Array,
): PlaintextCommitter {
  const key = derive(dataKey, capsuleId, COMMITMENT_KEY_LABEL)
  const hmac: Hmac = createHmac('sha256', key)
  key.fill(0)
  let size = 0
  return {
    update(bytes) {
      checkBytes('bytes', bytes)
      size += bytes.length
      hmac.update(bytes)
    },
    digest() {
      return { plaintextSize: size, plaintextCommitment: new Uint8Array(hmac.digest()) }
    },
  }
}

/** A fresh random 32-byte data key. Zero it with `.fill(0)` when done. */
export function generateDataKey(): Uint8Array {
  return new Uint8Array(randomBytes(DATA_KEY_LENGTH))
}

/** A fresh random 32-byte capsule id. */
export function generateCapsuleId(): Uint8Array {
  return new Uint8Array(randomBytes(32))
}
