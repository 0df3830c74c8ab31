/**
 * Whole-buffer sealing and opening, header creation and verification, random access.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
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
  type CapsuleHeader,
  CHUNK_TAG_LENGTH,
  CIPHER_SUITE_AES_256_GCM_STREAM,
  DEFAULT_CHUNK_SIZE,
  encodeCapsuleHeader,
  type KeyguardReference,
  type PolicyReference,
  type Receiver,
  type RuntimeRequirements,
  V2_CHUNK_SIZE,
} from './header.ts'
import {
  type CiphertextCommitment,
  contentCommitmentCombiner,
  createCiphertextCommitmentCombiner,
  createPlaintextCommitment,
  DATA_KEY_LENGTH,
  derivePayloadKey,
  generateCapsuleId,
  keyCommitment,
  type PlaintextCommitment,
} from './keys.ts'
import {
  chunkCountFor,
  chunkOffsets,
  chunkPlaintextLength,
  encodeCapsulePrefix,
  type ParsedCapsuleHeader,
  parseCapsuleHeader,
} from './parse.ts'
import { decryptChunk, encryptChunk, PayloadOpener, PayloadSealer } from './payload.ts'
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
   * `commitPlaintextFile(...)` over the plaintext (version 1), or a version 2
   * {@link CiphertextCommitment}. Its chunk size becomes the header's.
   */
  commitment?: PlaintextCommitment | CiphertextCommitment
  /**
   * The format version (default 1; a version 2 `commitment` makes it 2). Version 2 (SPEC.md
   * §11) hashes every byte once when a file is sealed and added to IPFS; its chunk size is 1 MiB.
   */
  formatVersion?: 1 | 2
  /**
   * Plaintext bytes per chunk; default: the commitment's, else {@link DEFAULT_CHUNK_SIZE}
   * (version 2: exactly {@link V2_CHUNK_SIZE}).
   */
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
  const version = params.formatVersion ?? (commitment && 'payloadCommitment' in commitment ? 2 : 1)
  if (version !== 1 && version !== 2) {
    throw new InvalidArgumentError('formatVersion must be 1 or 2', { details: { version } })
  }
  const chunkSize =
    params.chunkSize ??
    commitment?.chunkSize ??
    (version === 2 ? V2_CHUNK_SIZE : DEFAULT_CHUNK_SIZE)
  if (params.plaintext !== undefined) {
    if (commitment) throw new InvalidArgumentError('give plaintext or commitment, not both')
    checkBytes('plaintext', params.plaintext)
    if (version === 2) {
      commitment = ciphertextCommitment(params.dataKey, capsuleId, chunkSize, params.plaintext)
    } else {
      const c = createPlaintextCommitment(params.dataKey, capsuleId, chunkSize)
      c.update(params.plaintext)
      commitment = c.digest()
    }
  }
  if (!commitment) throw new InvalidArgumentError('plaintext or commitment is required')
  if (('payloadCommitment' in commitment ? 2 : 1) !== version) {
    throw new InvalidArgumentError('the commitment is of another format version', {
      details: { formatVersion: version },
      hint: 'Version 1 takes createPlaintextCommitment / commitPlaintextFile; version 2 a ciphertext commitment.',
    })
  }
  // The commitment hashes chunk by chunk, so it only holds for the chunk size it was cut at.
  if (commitment.chunkSize !== chunkSize) {
    throw new InvalidArgumentError('the commitment was computed with another chunk size', {
      details: { commitmentChunkSize: commitment.chunkSize, chunkSize },
      hint: 'Pass the same chunkSize to commitPlaintextFile / createPlaintextCommitment and here.',
    })
  }
  const header: CapsuleHeader = {
    version,
    capsuleId,
    owner: params.owner,
    createdAt: params.createdAt ?? Math.floor(Date.now() / 1000),
    policy: params.policy,
    keyguard: params.keyguard,
    payload: {
      cipherSuite: CIPHER_SUITE_AES_256_GCM_STREAM,
      chunkSize,
      plaintextSize: commitment.plaintextSize,
      contentCommitment:
        'payloadCommitment' in commitment
          ? commitment.payloadCommitment
          : commitment.plaintextCommitment,
      keyCommitment: keyCommitment(params.dataKey, capsuleId),
    },
    runtime: params.runtime,
    receivers: params.receivers ?? [],
    wrappedKeys: params.wrappedKeys ?? [],
  }
  // Validate now, and return the normalised form (checksummed addresses, no stray keys).
  return parseCapsuleHeader(
    encodeCapsulePrefix(encodeCapsuleHeader(header), new Uint8Array(65), header.version),
  ).header
}

/**
 * Version 2's commitment (SPEC.md §11.3) of a plaintext in memory: every chunk encrypted
 * (the ciphertext does not depend on the AAD; the tags, which do, are not used) and hashed.
 */
function ciphertextCommitment(
  dataKey: Uint8Array,
  capsuleId: Uint8Array,
  chunkSize: number,
  plaintext: Uint8Array,
): CiphertextCommitment {
  const size = plaintext.length
  const n = chunkCountFor(size, chunkSize)
  const key = derivePayloadKey(dataKey, capsuleId)
  const combiner = createCiphertextCommitmentCombiner(chunkSize, size)
  try {
    for (let i = 0; i < n; i++) {
      const piece = plaintext.subarray(i * chunkSize, Math.min(size, (i + 1) * chunkSize))
      const parts = encryptChunk(key, new Uint8Array(32), i, i === n - 1, [piece])
      parts.pop()
      const hash = createHash('sha256')
      for (const p of parts) hash.update(p)
      combiner.add(new Uint8Array(hash.digest()))
    }
  } finally {
    key.fill(0)
  }
  return { plaintextSize: size, chunkSize, payloadCommitment: combiner.digest() }
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
  const prefix = encodeCapsulePrefix(headerBytes, signature, params.header.version)
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
  const { prefix, sealer, parsed, payloadKey } = prepareSeal(params)
  const out = new Uint8Array(parsed.capsuleLength)
  out.set(prefix, 0)
  if (parsed.header.version !== 1) {
    try {
      sealBodies(parsed, payloadKey, params.plaintext, out)
    } finally {
      // the stream sealer holds the same key: this zeroes it
      sealer.destroy()
    }
    return out
  }
  let off = prefix.length
  for (const part of [...sealer.write(params.plaintext), ...sealer.end()]) {
    out.set(part, off)
    off += part.length
  }
  return out
}

/** Version 2 in memory: each body at its place, its tag in the table; the padding stays zero. */
function sealBodies(
  parsed: ParsedCapsuleHeader,
  payloadKey: Uint8Array,
  plaintext: Uint8Array,
  out: Uint8Array,
): void {
  const { plaintextSize } = parsed.header.payload
  if (plaintext.length !== plaintextSize) {
    throw new InvalidArgumentError('plaintext length does not match header.payload.plaintextSize', {
      details: { plaintextSize, received: plaintext.length },
    })
  }
  const last = parsed.chunkCount - 1
  for (let i = 0; i <= last; i++) {
    const { body, tag, length } = chunkOffsets(parsed, i)
    const start = body - parsed.bodiesOffset
    const parts = encryptChunk(payloadKey, parsed.headerHash, i, i === last, [
      plaintext.subarray(start, start + length),
    ])
    out.set(parts.pop() as Uint8Array, tag)
    let off = body
    for (const p of parts) {
      out.set(p, off)
      off += p.length
    }
  }
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
  const { capsuleId: id, version, payload } = parsed.header
  const commitment =
    options.checkCommitment === false
      ? undefined
      : contentCommitmentCombiner(
          version,
          options.dataKey,
          id,
          payload.chunkSize,
          payload.plaintextSize,
        )
  return new PayloadOpener(parsed, derivePayloadKey(options.dataKey, id), commitment)
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
 * offsets), as `[start, end)`, and where its 16-byte tag is. Version 1: the chunk and its tag,
 * which is its last 16 bytes; version 2: the body alone, its tag in the table at `tagStart`.
 *
 * @throws {InvalidArgumentError} if `index` is out of range.
 */
export function capsuleChunkRange(
  parsed: ParsedCapsuleHeader,
  index: number,
): { start: number; end: number; tagStart: number } {
  if (!Number.isSafeInteger(index) || index < 0 || index >= parsed.chunkCount) {
    throw new InvalidArgumentError('chunk index out of range', {
      details: { index, chunkCount: parsed.chunkCount },
    })
  }
  const { body, tag, length } = chunkOffsets(parsed, index)
  const end = body + length + (parsed.header.version === 1 ? CHUNK_TAG_LENGTH : 0)
  return { start: body, end, tagStart: tag }
}

/**
 * Opens chunk `index` alone (random access). The caller supplies the chunk's bytes, e.g.
 * `capsule.subarray(range.start, range.end)` for `range = capsuleChunkRange(parsed, index)`,
 * and for version 2 its tag, `capsule.subarray(range.tagStart, range.tagStart + 16)`.
 * Verify the header once with {@link verifyCapsuleHeader} first. The header's commitment
 * covers the whole payload, so it is not checked here; each chunk is still authenticated.
 *
 * @throws {InvalidArgumentError} if `index` is out of range, or a tag is missing (version 2)
 *   or given (version 1).
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
  tag?: Uint8Array,
): Uint8Array {
  const { start, end } = capsuleChunkRange(parsed, index)
  checkBytes('chunkBytes', chunkBytes)
  const v1 = parsed.header.version === 1
  if (v1 && tag !== undefined) {
    throw new InvalidArgumentError('a version 1 chunk carries its own tag: give no tag')
  }
  if (!v1) checkBytes('tag', tag, CHUNK_TAG_LENGTH)
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
    const sealed = v1 ? [chunkBytes] : [chunkBytes, tag as Uint8Array]
    const plain = decryptChunk(key, parsed.headerHash, index, last, sealed)
    if (!plain) {
      throw new CapsuleIntegrityError('payload chunk failed authentication', {
        details: { chunk: index, reason: 'chunk-authentication' },
        hint: 'The chunk was altered, or belongs to another index or header.',
      })
    }
    const out = new Uint8Array(chunkPlaintextLength(parsed.header, index))
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
