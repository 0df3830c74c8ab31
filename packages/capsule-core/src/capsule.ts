/**
 * Whole-buffer sealing and opening, header creation and verification, random access.
 */
import { timingSafeEqual } from 'node:crypto'
import type { Address } from './encoding/address.ts'
import { bytesArg, checkBytes, equalBytes } from './encoding/bytes.ts'
import { type Hex, toHex } from './encoding/hex.ts'
import {
  CapsuleFormatError,
  CapsuleIntegrityError,
  CapsuleKeyError,
  CapsuleTruncatedError,
  InvalidArgumentError,
} from './errors.ts'
import {
  CAPSULE_FORMAT_VERSION,
  type CapsuleHeader,
  CHUNK_TAG_LENGTH,
  CIPHER_SUITE_AES_256_GCM_STREAM,
  DEFAULT_CHUNK_SIZE,
  encodeCapsuleHeader,
  type KeyguardReference,
  type PolicyReference,
  type Receiver,
  type RuntimeRequirements,
} from './header.ts'
import {
  createPlaintextCommitment,
  DATA_KEY_LENGTH,
  deriveCommitmentKey,
  derivePayloadKey,
  generateCapsuleId,
  keyCommitment,
  type PlaintextCommitment,
} from './keys.ts'
import {
  chunkPlaintextLength,
  encodeCapsulePrefix,
  type ParsedCapsuleHeader,
  parseCapsuleHeader,
} from './parse.ts'
import { decryptChunk, PayloadOpener, PayloadSealer } from './payload.ts'
import { checkHeaderSignature, type VerifiedCapsuleHeader, verifyOnce } from './verified-header.ts'
import type { WrappedKey } from './wrapped-key.ts'

/** Inputs of {@link createCapsuleHeader}. Give `plaintext`, or a precomputed `commitment`. */
export interface CreateCapsuleHeaderParameters {
  owner: Address
  policy: PolicyReference
  keyguard: KeyguardReference
  runtime: RuntimeRequirements
  receivers?: Receiver[]
  wrappedKeys?: WrappedKey[]
  /** The 32-byte data key the payload will be sealed with. */
  dataKey: Uint8Array
  /** The whole plaintext (for buffers). */
  plaintext?: Uint8Array
  /**
   * For streams and files: the result of `createPlaintextCommitment(...).digest()` or
   * `commitPlaintextFile(...)` over the plaintext. Its chunk size becomes the header's.
   */
  commitment?: PlaintextCommitment
  /** Plaintext bytes per chunk; default: the commitment's, else {@link DEFAULT_CHUNK_SIZE}. */
  chunkSize?: number
  /** 32 bytes; default random. Inject for reproducible output. */
  capsuleId?: Uint8Array
  /** Unix seconds; default now. */
  createdAt?: number
}

/**
 * Builds a header: fresh capsule id, key commitment and plaintext commitment.
 *
 * @throws {InvalidArgumentError} for a missing or invalid field.
 * @example
 * ```ts
 * const header = createCapsuleHeader({ owner, policy, keyguard, runtime: { kind: 'data' }, dataKey, plaintext })
 * ```
 */
export function createCapsuleHeader(params: CreateCapsuleHeaderParameters): CapsuleHeader {
  checkBytes('dataKey', params.dataKey, DATA_KEY_LENGTH)
  const capsuleId = params.capsuleId ?? generateCapsuleId()
  checkBytes('capsuleId', capsuleId, 32)
  let commitment = params.commitment
  const chunkSize = params.chunkSize ?? commitment?.chunkSize ?? DEFAULT_CHUNK_SIZE
  if (params.plaintext !== undefined) {
    if (commitment) throw new InvalidArgumentError('give plaintext or commitment, not both')
    checkBytes('plaintext', params.plaintext)
    const c = createPlaintextCommitment(params.dataKey, capsuleId, chunkSize)
    c.update(params.plaintext)
    commitment = c.digest()
  }
  if (!commitment) throw new InvalidArgumentError('plaintext or commitment is required')
  // The commitment hashes chunk by chunk, so it only holds for the chunk size it was cut at.
  if (commitment.chunkSize !== chunkSize) {
    throw new InvalidArgumentError('the commitment was computed with another chunk size', {
      details: { commitmentChunkSize: commitment.chunkSize, chunkSize },
      hint: 'Pass the same chunkSize to commitPlaintextFile / createPlaintextCommitment and here.',
    })
  }
  const header: CapsuleHeader = {
    version: CAPSULE_FORMAT_VERSION,
    capsuleId,
    owner: params.owner,
    createdAt: params.createdAt ?? Math.floor(Date.now() / 1000),
    policy: params.policy,
    keyguard: params.keyguard,
    payload: {
      cipherSuite: CIPHER_SUITE_AES_256_GCM_STREAM,
      chunkSize,
      plaintextSize: commitment.plaintextSize,
      plaintextCommitment: commitment.plaintextCommitment,
      keyCommitment: keyCommitment(params.dataKey, capsuleId),
    },
    runtime: params.runtime,
    receivers: params.receivers ?? [],
    wrappedKeys: params.wrappedKeys ?? [],
  }
  // Validate now, and return the normalised form (checksummed addresses, no stray keys).
  return parseCapsuleHeader(encodeCapsulePrefix(encodeCapsuleHeader(header), new Uint8Array(65)))
    .header
}

/** Inputs shared by {@link sealCapsule} and the sealing streams. */
export interface SealParameters {
  header: CapsuleHeader
  /** The owner's signature over {@link capsuleTypedData}(header): 65 bytes or 0x-hex. */
  signature: Uint8Array | Hex
  /** The 32-byte data key. Not retained; the derived payload key is zeroed at the end. */
  dataKey: Uint8Array
}

/** Options shared by {@link openCapsule} and the opening streams. */
export interface OpenOptions {
  /** The 32-byte data key. */
  dataKey: Uint8Array
  /** If given, the header owner must be this address (CAPSULE_SIGNATURE otherwise). */
  owner?: Address
  /**
   * Check the plaintext commitment at the end (default true). Turning it off still
   * authenticates every chunk against anyone without the data key, but no longer proves
   * that the content is what the owner signed (SPEC.md §4.3).
   */
  checkCommitment?: boolean
  /**
   * The proof {@link verifiedCapsuleHeader} gave for this header: the owner signature is not
   * checked again. Taken only for the header it was made for, unchanged (a changed one is
   * checked in full); anything else given here is refused ({@link InvalidArgumentError}).
   */
  verified?: VerifiedCapsuleHeader
}

/**
 * Whether `dataKey` is the key a capsule header commits to (`payload.keyCommitment`).
 * Constant-time comparison; false (never a throw) for a key of the wrong length. Use it to
 * reject a wrong or forged key release before acknowledging it.
 *
 * @example
 * ```ts
 * if (!checkKeyCommitment(parseCapsuleHeader(capsule), dataKey)) throw new Error('wrong key')
 * ```
 */
export function checkKeyCommitment(
  parsed: Pick<ParsedCapsuleHeader, 'header'>,
  dataKey: Uint8Array,
): boolean {
  if (!(dataKey instanceof Uint8Array) || dataKey.length !== DATA_KEY_LENGTH) return false
  const expected = parsed.header.payload.keyCommitment
  const got = keyCommitment(dataKey, parsed.header.capsuleId)
  return got.length === expected.length && timingSafeEqual(got, expected)
}

/** A prepared seal: the bytes before the payload, and the payload state machine. */
export function prepareSeal(params: SealParameters): {
  prefix: Uint8Array
  sealer: PayloadSealer
  parsed: ParsedCapsuleHeader
  payloadKey: Uint8Array
} {
  checkBytes('dataKey', params.dataKey, DATA_KEY_LENGTH)
  const headerBytes = encodeCapsuleHeader(params.header)
  const signature =
    typeof params.signature === 'string'
      ? bytesArg('signature', params.signature, 65)
      : params.signature
  checkBytes('signature', signature, 65)
  const prefix = encodeCapsulePrefix(headerBytes, signature)
  const parsed = parseCapsuleHeader(prefix)
  verifyCapsuleHeader(parsed)
  if (
    !equalBytes(
      keyCommitment(params.dataKey, parsed.header.capsuleId),
      parsed.header.payload.keyCommitment,
    )
  ) {
    throw new InvalidArgumentError('dataKey does not match header.payload.keyCommitment', {
      hint: 'Build the header with createCapsuleHeader using the same data key.',
    })
  }
  const payloadKey = derivePayloadKey(params.dataKey, parsed.header.capsuleId)
  const { chunkSize, plaintextSize } = parsed.header.payload
  return {
    prefix,
    parsed,
    payloadKey,
    sealer: new PayloadSealer(payloadKey, parsed.headerHash, chunkSize, plaintextSize),
  }
}

/**
 * Seals a whole plaintext into capsule bytes. Deterministic: the same header, signature,
 * key and plaintext always give the same bytes.
 *
 * @throws {InvalidArgumentError} if the plaintext size, data key or signature do not match the header.
 * @throws {CapsuleSignatureError} if the signature is not the owner's.
 * @example
 * ```ts
 * const capsule = sealCapsule({ header, signature: signCapsuleHeader(header, ownerKey), dataKey, plaintext })
 * ```
 */
export function sealCapsule(params: SealParameters & { plaintext: Uint8Array }): Uint8Array {
  checkBytes('plaintext', params.plaintext)
  const { prefix, sealer, parsed } = prepareSeal(params)
  const out = new Uint8Array(parsed.capsuleLength)
  out.set(prefix, 0)
  let off = prefix.length
  for (const part of [...sealer.write(params.plaintext), ...sealer.end()]) {
    out.set(part, off)
    off += part.length
  }
  return out
}

/**
 * Verifies the owner's EIP-712 signature on a parsed header; returns the owner address.
 *
 * @param options.owner - if given, the header's owner must also equal this address.
 * @throws {CapsuleSignatureError} if the signature is malformed, from someone else, or the owner differs.
 * @example
 * ```ts
 * const owner = verifyCapsuleHeader(parseCapsuleHeader(bytes), { owner: expectedOwner })
 * ```
 */
export function verifyCapsuleHeader(
  parsed: ParsedCapsuleHeader | Uint8Array,
  options: { owner?: Address } = {},
): Address {
  const p = parsed instanceof Uint8Array ? parseCapsuleHeader(parsed) : parsed
  return checkHeaderSignature(p, options).owner
}

/** Checks the data key against the header's key commitment. */
export function checkDataKey(parsed: ParsedCapsuleHeader, dataKey: Uint8Array): void {
  checkBytes('dataKey', dataKey, DATA_KEY_LENGTH)
  if (
    !equalBytes(
      keyCommitment(dataKey, parsed.header.capsuleId),
      parsed.header.payload.keyCommitment,
    )
  ) {
    throw new CapsuleKeyError('the data key does not open this capsule', {
      details: { capsuleId: toHex(parsed.header.capsuleId) },
      hint: 'Ask the keyguard named in the header for this capsule’s key.',
    })
  }
}

/**
 * Verifies signature (unless `options.verified` proves it) and key, and returns the payload
 * state machine: `write` takes encrypted bytes and returns the plaintext of every chunk they
 * complete (fed exactly one chunk and its tag at a time, it keeps no reference to them); `end`
 * checks that the payload is complete.
 * For a caller that reads the capsule itself, with its own buffers (the executor's streaming
 * open); `openFile`, `openCapsule` and the streams use it too.
 *
 * @throws {CapsuleSignatureError} | {@link CapsuleKeyError}, as `openCapsule`.
 * @example
 * ```ts
 * const opener = prepareOpen(parseCapsuleHeader(head), { dataKey })
 * for (const chunk of encryptedChunks) sink(opener.write(chunk))
 * opener.end()
 * ```
 */
export function prepareOpen(parsed: ParsedCapsuleHeader, options: OpenOptions): PayloadOpener {
  verifyOnce(parsed, options)
  checkDataKey(parsed, options.dataKey)
  const id = parsed.header.capsuleId
  const commitmentKey =
    options.checkCommitment === false ? undefined : deriveCommitmentKey(options.dataKey, id)
  return new PayloadOpener(parsed, derivePayloadKey(options.dataKey, id), commitmentKey)
}

/** Result of {@link openCapsule}. */
export interface OpenedCapsule {
  /** The parsed, signature-verified header. */
  parsed: ParsedCapsuleHeader
  plaintext: Uint8Array
}

/**
 * Opens capsule bytes: parses, verifies the owner signature, checks the key, decrypts and
 * authenticates every chunk, and checks the plaintext commitment.
 *
 * @throws {CapsuleFormatError} | {@link CapsuleVersionError} | {@link CapsuleLimitError} for a malformed capsule.
 * @throws {CapsuleSignatureError} for a bad or unexpected owner signature.
 * @throws {CapsuleKeyError} for a wrong data key.
 * @throws {CapsuleIntegrityError} for a tampered, reordered, duplicated or foreign chunk, or trailing data.
 * @throws {CapsuleTruncatedError} if the capsule ends early.
 * @example
 * ```ts
 * const { plaintext, parsed } = openCapsule(capsule, { dataKey })
 * ```
 */
export function openCapsule(bytes: Uint8Array, options: OpenOptions): OpenedCapsule {
  const parsed = parseCapsuleHeader(bytes)
  const opener = prepareOpen(parsed, options)
  const parts = opener.write(bytes.subarray(parsed.payloadOffset))
  opener.end()
  const plaintext = new Uint8Array(parsed.header.payload.plaintextSize)
  let off = 0
  for (const p of parts) {
    plaintext.set(p, off)
    off += p.length
  }
  return { parsed, plaintext }
}

/**
 * Byte range of chunk `index` inside the capsule (for HTTP range requests or IPFS
 * offsets), as `[start, end)`.
 *
 * @throws {InvalidArgumentError} if `index` is out of range.
 */
export function capsuleChunkRange(
  parsed: ParsedCapsuleHeader,
  index: number,
): { start: number; end: number } {
  if (!Number.isSafeInteger(index) || index < 0 || index >= parsed.chunkCount) {
    throw new InvalidArgumentError('chunk index out of range', {
      details: { index, chunkCount: parsed.chunkCount },
    })
  }
  const start = parsed.payloadOffset + index * (parsed.header.payload.chunkSize + CHUNK_TAG_LENGTH)
  return { start, end: start + chunkPlaintextLength(parsed.header, index) + CHUNK_TAG_LENGTH }
}

/**
 * Opens chunk `index` alone (random access). The caller supplies the chunk's bytes, e.g.
 * `capsule.subarray(range.start, range.end)` for `range = capsuleChunkRange(parsed, index)`.
 * Verify the header once with {@link verifyCapsuleHeader} first. The plaintext commitment
 * covers the whole payload, so it is not checked here; each chunk is still authenticated.
 *
 * @throws {InvalidArgumentError} if `index` is out of range.
 * @throws {CapsuleKeyError} for a wrong data key.
 * @throws {CapsuleTruncatedError} if `chunkBytes` is shorter than the chunk, {@link CapsuleFormatError} if longer.
 * @throws {CapsuleIntegrityError} if the chunk does not authenticate at this index.
 * @example
 * ```ts
 * const { start, end } = capsuleChunkRange(parsed, 7)
 * const plain = openChunk(parsed, dataKey, 7, capsule.subarray(start, end))
 * ```
 */
export function openChunk(
  parsed: ParsedCapsuleHeader,
  dataKey: Uint8Array,
  index: number,
  chunkBytes: Uint8Array,
): Uint8Array {
  const { start, end } = capsuleChunkRange(parsed, index)
  checkBytes('chunkBytes', chunkBytes)
  const expected = end - start
  if (chunkBytes.length < expected) {
    throw new CapsuleTruncatedError('chunk is shorter than expected', {
      details: { chunk: index, length: chunkBytes.length, expected },
    })
  }
  if (chunkBytes.length > expected) {
    throw new CapsuleFormatError('chunk is longer than expected', {
      details: { chunk: index, length: chunkBytes.length, expected },
    })
  }
  checkDataKey(parsed, dataKey)
  const key = derivePayloadKey(dataKey, parsed.header.capsuleId)
  try {
    const last = index === parsed.chunkCount - 1
    const plain = decryptChunk(key, parsed.headerHash, index, last, [chunkBytes])
    if (!plain) {
      throw new CapsuleIntegrityError('payload chunk failed authentication', {
        details: { chunk: index, reason: 'chunk-authentication' },
        hint: 'The chunk was altered, or belongs to another index or header.',
      })
    }
    const out = new Uint8Array(expected - CHUNK_TAG_LENGTH)
    let off = 0
    for (const p of plain) {
      out.set(p, off)
      off += p.length
    }
    return out
  } finally {
    key.fill(0)
  }
}

/**
 * The capsule id as 0x-hex, from capsule bytes, a parsed header, or a header.
 *
 * @throws the errors of {@link parseCapsuleHeader} when given bytes.
 * @example
 * ```ts
 * capsuleId(capsuleBytes) // '0x5f…'
 * ```
 */
export function capsuleId(capsule: Uint8Array | ParsedCapsuleHeader | CapsuleHeader): Hex {
  if (capsule instanceof Uint8Array) return toHex(parseCapsuleHeader(capsule).header.capsuleId)
  if ('header' in capsule) return toHex(capsule.header.capsuleId)
  return toHex(capsule.capsuleId)
}
