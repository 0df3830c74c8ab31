/**
 * Container parsing: preamble, header, signature, and the chunk geometry they imply.
 */
import { keccak_256 } from '@noble/hashes/sha3.js'
import { checkBytes } from './encoding/bytes.ts'
import {
  CapsuleFormatError,
  CapsuleLimitError,
  CapsuleTruncatedError,
  CapsuleVersionError,
} from './errors.ts'
import {
  CAPSULE_FORMAT_VERSION,
  CAPSULE_FORMAT_VERSIONS,
  CAPSULE_MAGIC,
  CAPSULE_PREAMBLE_LENGTH,
  CAPSULE_SIGNATURE_LENGTH,
  type CapsuleHeader,
  CHUNK_TAG_LENGTH,
  decodeCapsuleHeader,
  MAX_HEADER_LENGTH,
  V2_ALIGN_MIN_CHUNKS,
  V2_BODY_ALIGNMENT,
} from './header.ts'

/** A parsed capsule header with everything needed to open or locate its chunks. */
export interface ParsedCapsuleHeader {
  /** The decoded, validated header. */
  header: CapsuleHeader
  /** The canonical CBOR header bytes as they appear in the capsule. */
  headerBytes: Uint8Array
  /** keccak256(headerBytes): signed via EIP-712 and bound into every chunk as AAD. */
  headerHash: Uint8Array
  /** The owner's 65-byte `r || s || v` signature (not yet verified). */
  signature: Uint8Array
  /**
   * Offset of the payload: the bytes after the signature. Version 1: the first chunk;
   * version 2: the tag table (SPEC.md §11.2).
   */
  payloadOffset: number
  /**
   * Offset of chunk 0's ciphertext. Version 1: `payloadOffset`; version 2: after the tag
   * table and the zero padding, `bodiesOffset + i × chunkSize` is body i.
   */
  bodiesOffset: number
  /** Number of payload chunks (at least 1). */
  chunkCount: number
  /**
   * Payload length: version 1, plaintextSize + 16 × chunkCount; version 2, the tag table, the
   * padding and the bodies (`capsuleLength − payloadOffset`).
   */
  payloadLength: number
  /** Total capsule length: payloadOffset + payloadLength. */
  capsuleLength: number
}

/**
 * Where version 2 puts its bodies: after the tag table, rounded up to 1 MiB for a capsule of
 * {@link V2_ALIGN_MIN_CHUNKS} chunks or more (SPEC.md §11.2).
 */
export function v2BodiesOffset(prefixLength: number, chunkCount: number): number {
  const tableEnd = prefixLength + CHUNK_TAG_LENGTH * chunkCount
  if (chunkCount < V2_ALIGN_MIN_CHUNKS) return tableEnd
  return Math.ceil(tableEnd / V2_BODY_ALIGNMENT) * V2_BODY_ALIGNMENT
}

/** Where chunk `index`'s ciphertext starts, and where its tag is, in either version. */
export function chunkOffsets(
  parsed: Pick<ParsedCapsuleHeader, 'header' | 'payloadOffset' | 'bodiesOffset'>,
  index: number,
): { body: number; tag: number; length: number } {
  const { chunkSize } = parsed.header.payload
  const length = chunkPlaintextLength(parsed.header, index)
  if (parsed.header.version === 1) {
    const body = parsed.payloadOffset + index * (chunkSize + CHUNK_TAG_LENGTH)
    return { body, tag: body + length, length }
  }
  return {
    body: parsed.bodiesOffset + index * chunkSize,
    tag: parsed.payloadOffset + index * CHUNK_TAG_LENGTH,
    length,
  }
}

/** Number of chunks for a plaintext size: max(1, ceil(size / chunkSize)). */
export function chunkCountFor(plaintextSize: number, chunkSize: number): number {
  return plaintextSize === 0 ? 1 : Math.ceil(plaintextSize / chunkSize)
}

/** Plaintext length of chunk `index`. */
export function chunkPlaintextLength(header: CapsuleHeader, index: number): number {
  const { plaintextSize, chunkSize } = header.payload
  const n = chunkCountFor(plaintextSize, chunkSize)
  return index < n - 1 ? chunkSize : plaintextSize - (n - 1) * chunkSize
}

/**
 * Checks the preamble prefix available so far. Returns the header length once all 12 bytes
 * are there, `undefined` while the bytes seen are a valid prefix.
 *
 * @throws {CapsuleFormatError} bad magic; {@link CapsuleVersionError} unknown version;
 *   {@link CapsuleLimitError} header length over {@link MAX_HEADER_LENGTH}.
 */
export function checkPreamble(bytes: Uint8Array): number | undefined {
  const m = Math.min(bytes.length, CAPSULE_MAGIC.length)
  for (let i = 0; i < m; i++) {
    if (bytes[i] !== CAPSULE_MAGIC[i]) {
      throw new CapsuleFormatError('not a Digicap capsule (bad magic)', {
        details: { offset: i },
        hint: 'A capsule starts with the ASCII bytes "DIGICAP" and a version byte.',
      })
    }
  }
  if (bytes.length <= CAPSULE_MAGIC.length) return undefined
  const version = bytes[CAPSULE_MAGIC.length] as number
  if (!CAPSULE_FORMAT_VERSIONS.includes(version)) {
    throw new CapsuleVersionError('unsupported capsule format version', {
      details: { version, supported: CAPSULE_FORMAT_VERSIONS },
      hint: 'Upgrade @digicap/capsule-core to read newer capsules.',
    })
  }
  if (bytes.length < CAPSULE_PREAMBLE_LENGTH) return undefined
  const view = new DataView(bytes.buffer, bytes.byteOffset, CAPSULE_PREAMBLE_LENGTH)
  const headerLength = view.getUint32(8, false)
  if (headerLength > MAX_HEADER_LENGTH) {
    throw new CapsuleLimitError('capsule header length is over the limit', {
      details: { headerLength, max: MAX_HEADER_LENGTH },
    })
  }
  if (headerLength === 0) throw new CapsuleFormatError('capsule header is empty')
  return headerLength
}

/**
 * Parses the preamble, header and signature at the start of `bytes` (a whole capsule or any
 * prefix that contains the signature). Does not verify the signature: see `verifyCapsuleHeader`.
 *
 * @throws {CapsuleFormatError} | {@link CapsuleVersionError} | {@link CapsuleLimitError} |
 *   {@link CapsuleTruncatedError} for input that is malformed or ends before the signature.
 * @example
 * ```ts
 * const parsed = parseCapsuleHeader(capsuleBytes)
 * console.log(parsed.header.owner, parsed.header.payload.plaintextSize)
 * ```
 */
export function parseCapsuleHeader(bytes: Uint8Array): ParsedCapsuleHeader {
  checkBytes('bytes', bytes)
  const headerLength = checkPreamble(bytes)
  if (headerLength === undefined) {
    throw new CapsuleTruncatedError('capsule ends inside its preamble', {
      details: { length: bytes.length, needed: CAPSULE_PREAMBLE_LENGTH },
    })
  }
  const headerEnd = CAPSULE_PREAMBLE_LENGTH + headerLength
  const payloadOffset = headerEnd + CAPSULE_SIGNATURE_LENGTH
  if (bytes.length < payloadOffset) {
    throw new CapsuleTruncatedError('capsule ends inside its header or signature', {
      details: { length: bytes.length, needed: payloadOffset },
    })
  }
  const headerBytes = bytes.slice(CAPSULE_PREAMBLE_LENGTH, headerEnd)
  const version = bytes[CAPSULE_MAGIC.length] as number
  const header = decodeCapsuleHeader(headerBytes, version)
  const { plaintextSize, chunkSize } = header.payload
  const chunkCount = chunkCountFor(plaintextSize, chunkSize)
  const bodiesOffset = version === 1 ? payloadOffset : v2BodiesOffset(payloadOffset, chunkCount)
  const capsuleLength =
    version === 1
      ? payloadOffset + plaintextSize + CHUNK_TAG_LENGTH * chunkCount
      : bodiesOffset + plaintextSize
  return {
    header,
    headerBytes,
    headerHash: keccak_256(headerBytes),
    signature: bytes.slice(headerEnd, payloadOffset),
    payloadOffset,
    bodiesOffset,
    chunkCount,
    payloadLength: capsuleLength - payloadOffset,
    capsuleLength,
  }
}

/** Builds the preamble + header + signature bytes; `version` is the header's. */
export function encodeCapsulePrefix(
  headerBytes: Uint8Array,
  signature: Uint8Array,
  version: number = CAPSULE_FORMAT_VERSION,
): Uint8Array {
  const out = new Uint8Array(
    CAPSULE_PREAMBLE_LENGTH + headerBytes.length + CAPSULE_SIGNATURE_LENGTH,
  )
  out.set(CAPSULE_MAGIC, 0)
  out[CAPSULE_MAGIC.length] = version
  new DataView(out.buffer).setUint32(8, headerBytes.length, false)
  out.set(headerBytes, CAPSULE_PREAMBLE_LENGTH)
  out.set(signature, CAPSULE_PREAMBLE_LENGTH + headerBytes.length)
  return out
}
