/**
 * Generates the format version 2 test vectors in test/vectors-v2/ (SPEC.md §11.5), in the
 * format of test/vectors/ (§8: a few `key: value` lines, a blank line, then the capsule bytes).
 * Deterministic: all keys, ids and times are fixed, sealing has no randomness, and signatures
 * are RFC 6979. `test/vectors-v2.test.ts` re-runs this generator and fails if the committed
 * files drift.
 *
 * A version 2 body is 1 MiB, so every case but three holds one short body (100 bytes or less);
 * `valid-one-body` holds one whole body, `valid-two-bodies` and `swapped-tags` two.
 *
 * The zero padding before 1 MiB-aligned bodies (SPEC.md §11.2) exists only from 64 bodies: its
 * two vectors are such a capsule cut short (in the padding; at the end of a padding with a
 * non-zero byte). `test/format-v2.test.ts` builds whole aligned capsules and checks them
 * through every reader and sealer.
 *
 *   node scripts/generate-vectors-v2.ts        # rewrite test/vectors-v2/
 */
import { createHash } from 'node:crypto'
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { decode, encode, rfc8949EncodeOptions } from 'cborg'
import { signDigest } from '../src/eip712/signature.ts'
import { hashTypedData } from '../src/eip712/typed-data.ts'
import { concatBytes } from '../src/encoding/bytes.ts'
import { toHex } from '../src/encoding/hex.ts'
import {
  type CapsuleHeader,
  capsuleChunkRange,
  capsuleTypedData,
  createCapsuleHeader,
  parseCapsuleHeader,
  sealCapsule,
  signCapsuleHeader,
  V2_CHUNK_SIZE,
} from '../src/index.ts'
import { createCiphertextCommitmentCombiner, derivePayloadKey } from '../src/keys.ts'
import { encodeCapsulePrefix } from '../src/parse.ts'
import { encryptChunk } from '../src/payload.ts'
import {
  BASE,
  build,
  CAPSULE_ID,
  DATA_KEY,
  detBytes,
  OWNER_KEY,
  WRONG_KEY,
} from '../test/fixtures.ts'
import { renderVector, type Vector } from './generate-vectors.ts'

/**
 * A version 2 vector: a {@link Vector} (rendered by the same `renderVector`), and for a failure
 * the `details.reason` the library's readers give, where SPEC.md names one. The reason is not
 * part of the file format (§8); the test checks it against the library.
 */
export interface VectorV2 extends Vector {
  reason?: string
}

const MiB = 1024 * 1024
const CS = V2_CHUNK_SIZE

/** A version 2 capsule of `plaintext` with the fixed keys and ids (fixtures.ts). */
const buildV2 = (plaintext: Uint8Array) => build(plaintext, CS, { formatVersion: 2 })

const sha256 = (bytes: Uint8Array) => new Uint8Array(createHash('sha256').update(bytes).digest())

function flip(bytes: Uint8Array, offset: number, bit = 0): Uint8Array {
  const out = bytes.slice()
  out[offset] = (out[offset] as number) ^ (1 << bit)
  return out
}

type RawHeader = Record<string, Record<string, unknown> & unknown>

/** Decodes the header CBOR of a capsule into a plain object for mutation. */
function rawHeader(capsule: Uint8Array): RawHeader {
  return decode(parseCapsuleHeader(capsule).headerBytes) as RawHeader
}

/**
 * The owner's signature over raw (possibly invalid) header bytes: the EIP-712 digest of the
 * `Capsule` struct (SPEC.md §5) with `headerHash = keccak256(headerBytes)`, the plaintext size
 * of `raw` and the other fields of `base` (which the vectors leave unchanged), as a verifier
 * that got past the header would compute it.
 */
function signRawHeader(base: CapsuleHeader, raw: RawHeader, headerBytes: Uint8Array): Uint8Array {
  const td = capsuleTypedData(base)
  const payload = raw.payload as Record<string, unknown>
  td.message = {
    ...td.message,
    plaintextSize: BigInt(payload.plaintextSize as number),
    headerHash: toHex(keccak_256(headerBytes)),
  }
  return signDigest(hashTypedData(td), OWNER_KEY)
}

/**
 * A version 2 capsule around the header `raw` (canonically encoded, signed by the owner), with
 * the payload (tag table and bodies) of `capsule` after it.
 */
function withRawHeader(capsule: Uint8Array, raw: RawHeader): Uint8Array {
  const p = parseCapsuleHeader(capsule)
  const headerBytes = encode(raw, rfc8949EncodeOptions)
  return concatBytes(
    encodeCapsulePrefix(headerBytes, signRawHeader(p.header, raw, headerBytes), 2),
    capsule.subarray(p.payloadOffset),
  )
}

/**
 * Bodies `plaintext` sealed under the header of `capsule` with its real payload key and header
 * hash (what a data-key holder can do), each tag written into the table: every tag verifies.
 * `last(i)` is the last-chunk flag of chunk i's nonce.
 */
function reseal(
  capsule: Uint8Array,
  plaintext: Uint8Array,
  last: (i: number, n: number) => boolean = (i, n) => i === n - 1,
): Uint8Array {
  const p = parseCapsuleHeader(capsule)
  if (plaintext.length !== p.header.payload.plaintextSize) throw new Error('size differs')
  const key = derivePayloadKey(DATA_KEY, p.header.capsuleId)
  const out = capsule.slice()
  for (let i = 0; i < p.chunkCount; i++) {
    const { start, end, tagStart } = capsuleChunkRange(p, i)
    const parts = encryptChunk(key, p.headerHash, i, last(i, p.chunkCount), [
      plaintext.subarray(i * CS, i * CS + (end - start)),
    ])
    out.set(parts.pop() as Uint8Array, tagStart)
    out.set(concatBytes(...parts), start)
  }
  key.fill(0)
  return out
}

const success = (name: string, description: string, b: ReturnType<typeof build>): VectorV2 => ({
  name,
  description,
  expect: 'success',
  dataKey: DATA_KEY,
  plaintext: b.plaintext,
  capsule: b.capsule,
})

const failure = (
  name: string,
  description: string,
  error: string,
  capsule: Uint8Array,
  options: { reason?: string; dataKey?: Uint8Array } = {},
): VectorV2 => ({
  name,
  description,
  expect: 'failure',
  error,
  dataKey: options.dataKey ?? DATA_KEY,
  capsule,
  ...(options.reason === undefined ? {} : { reason: options.reason }),
})

/** All version 2 vectors, in a fixed order. */
export function generateVectorsV2(): VectorV2[] {
  const v: VectorV2[] = []
  const pt = (n: number) => detBytes(`v2 plaintext ${n}`, n)

  // Valid capsules: the body counts and lengths of §6.2 and §11.2.
  v.push(
    success(
      'valid-empty',
      'empty payload: one empty body, its tag alone in the table',
      buildV2(pt(0)),
    ),
  )
  v.push(success('valid-one-byte', 'one byte payload: one 1-byte body', buildV2(pt(1))))
  const short = buildV2(pt(100))
  v.push(success('valid-100-bytes', '100 byte payload: one short body', short))
  v.push(
    success(
      'valid-one-body',
      'exactly 1 MiB: one whole body, no empty body after it',
      buildV2(pt(MiB)),
    ),
  )
  const two = buildV2(pt(MiB + 3))
  v.push(
    success(
      'valid-two-bodies',
      '1 MiB + 3: two tags in the table, a whole body, then a 3-byte last body',
      two,
    ),
  )

  // The tag table (§11.2, §11.4).
  const tp = parseCapsuleHeader(two.capsule)
  const swapped = two.capsule.slice()
  swapped.set(two.capsule.subarray(tp.payloadOffset + 16, tp.payloadOffset + 32), tp.payloadOffset)
  swapped.set(two.capsule.subarray(tp.payloadOffset, tp.payloadOffset + 16), tp.payloadOffset + 16)
  v.push(
    failure(
      'swapped-tags',
      'the two tags of the table swapped: body 0 fails with tag 1',
      'CAPSULE_INTEGRITY',
      swapped,
      { reason: 'chunk-authentication' },
    ),
  )
  const c = short.capsule
  const p = parseCapsuleHeader(c)
  const body = capsuleChunkRange(p, 0)
  v.push(
    failure(
      'flipped-bit-tag',
      'one bit flipped in the tag (the table of one tag)',
      'CAPSULE_INTEGRITY',
      flip(c, body.tagStart + 15, 3),
      { reason: 'chunk-authentication' },
    ),
  )
  v.push(
    failure(
      'truncated-in-tag-table',
      'ends 7 bytes into the tag table',
      'CAPSULE_TRUNCATED',
      c.slice(0, p.payloadOffset + 7),
    ),
  )

  // The padding (§11.2, §11.4 step 8): an aligned capsule (65 bodies of zeros) cut short, so
  // the vectors stay small: the table and part of its padding; the whole padding with one
  // byte set and no body after it (the padding is checked before any body is read).
  const aligned = buildV2(new Uint8Array(64 * MiB + 1)).capsule
  const ap = parseCapsuleHeader(aligned)
  const paddingStart = ap.payloadOffset + 16 * ap.chunkCount
  v.push(
    failure(
      'truncated-in-padding',
      '65 bodies (64 MiB + 1 of zeros): ends 100 bytes into the zero padding before the bodies',
      'CAPSULE_TRUNCATED',
      aligned.slice(0, paddingStart + 100),
    ),
  )
  const nonZero = aligned.slice(0, ap.bodiesOffset)
  nonZero[ap.bodiesOffset - 1] = 1
  v.push(
    failure(
      'non-zero-padding',
      '65 bodies (64 MiB + 1): the last byte of the padding is 1, and the capsule ends there (the padding is refused before any body)',
      'CAPSULE_FORMAT',
      nonZero,
      { reason: 'padding' },
    ),
  )

  // The bodies (§11.4 step 9).
  v.push(
    failure(
      'flipped-bit-body',
      'one bit flipped in the body',
      'CAPSULE_INTEGRITY',
      flip(c, body.start + 7, 5),
      { reason: 'chunk-authentication' },
    ),
  )
  // An encoder bug: the only body sealed with the last-chunk flag off, under a header whose
  // commitment is over that very body, so the flag is the one fault. (The ciphertext does not
  // depend on the AAD, so the body for the commitment is sealed before the header exists.)
  const plain = pt(100)
  const unmarkedKey = derivePayloadKey(DATA_KEY, CAPSULE_ID)
  const unmarked = encryptChunk(unmarkedKey, new Uint8Array(32), 0, false, [plain])
  unmarkedKey.fill(0)
  unmarked.pop()
  const combiner = createCiphertextCommitmentCombiner(CS, plain.length)
  combiner.add(sha256(concatBytes(...unmarked)))
  const unmarkedHeader = createCapsuleHeader({
    ...BASE,
    formatVersion: 2,
    dataKey: DATA_KEY,
    commitment: {
      plaintextSize: plain.length,
      chunkSize: CS,
      payloadCommitment: combiner.digest(),
    },
  })
  // The capsule a correct sealer makes of this header, its body and tag then sealed unmarked.
  const notLast = reseal(
    sealCapsule({
      header: unmarkedHeader,
      signature: signCapsuleHeader(unmarkedHeader, OWNER_KEY),
      dataKey: DATA_KEY,
      plaintext: plain,
    }),
    plain,
    () => false,
  )
  v.push(
    failure(
      'body-not-marked-last',
      'the only body sealed with the last-chunk flag off (it authenticates as a middle body)',
      'CAPSULE_FORMAT',
      notLast,
      { reason: 'last-chunk-not-final' },
    ),
  )
  v.push(
    failure(
      'truncated-mid-body',
      'ends 50 bytes into the 100-byte body',
      'CAPSULE_TRUNCATED',
      c.slice(0, body.start + 50),
    ),
  )
  v.push(
    failure(
      'trailing-byte',
      'one byte after the last body',
      'CAPSULE_INTEGRITY',
      concatBytes(c, new Uint8Array([0])),
      { reason: 'trailing-data' },
    ),
  )

  // The payload commitment (§11.3): a key holder's other plaintext under the signed header.
  const forged = reseal(c, detBytes('v2 forged', 100))
  v.push(
    failure(
      'payload-commitment-mismatch',
      'another 100-byte plaintext sealed with the real payload key and header hash: every tag verifies, the bodies are not the ones the owner committed to',
      'CAPSULE_INTEGRITY',
      forged,
      { reason: 'payload-commitment' },
    ),
  )
  v.push(
    failure(
      'payload-commitment-mismatch-and-trailing-byte',
      'the commitment fails and a byte follows the last body: the commitment is checked first (SPEC §11.4)',
      'CAPSULE_INTEGRITY',
      concatBytes(forged, new Uint8Array([0])),
      { reason: 'payload-commitment' },
    ),
  )

  // Keys (§6.1).
  v.push(
    failure('wrong-key', 'opened with a different data key', 'CAPSULE_KEY', c, {
      dataKey: WRONG_KEY,
    }),
  )

  // The header (§2, §11.1), each re-signed by the owner: the stated fault is the only one.
  const v1Byte = c.slice()
  v1Byte[7] = 1
  v.push(
    failure(
      'version-1-preamble-over-version-2-header',
      'preamble says version 1, the header is a valid version 2 header',
      'CAPSULE_FORMAT',
      v1Byte,
    ),
  )
  const mutated = (
    name: string,
    description: string,
    error: string,
    edit: (payload: Record<string, unknown>) => void,
  ) => {
    const h = rawHeader(c)
    edit(h.payload as Record<string, unknown>)
    v.push(failure(name, description, error, withRawHeader(c, h)))
  }
  mutated(
    'chunk-size-2-mib',
    'chunk size 2 MiB: a valid version 1 chunk size, not the one of version 2',
    'CAPSULE_FORMAT',
    (pl) => {
      pl.chunkSize = 2 * MiB
    },
  )
  mutated(
    'chunk-size-64-kib',
    'chunk size 64 KiB: a valid version 1 chunk size, not the one of version 2',
    'CAPSULE_FORMAT',
    (pl) => {
      pl.chunkSize = 64 * 1024
    },
  )
  mutated(
    'plaintext-commitment-key',
    'the payload commitment under version 1’s key plaintextCommitment (unknown in version 2)',
    'CAPSULE_FORMAT',
    (pl) => {
      pl.plaintextCommitment = pl.payloadCommitment
      delete pl.payloadCommitment
    },
  )
  mutated(
    'plaintext-size-over-limit',
    'plaintext size 2^40 + 1: a tag table of 2^20 + 1 tags, over 16 MiB',
    'CAPSULE_LIMIT',
    (pl) => {
      pl.plaintextSize = 2 ** 40 + 1
    },
  )
  mutated(
    'plaintext-size-at-limit',
    'plaintext size 2^40, the largest (a 16 MiB tag table): the header is valid, the capsule ends in its table',
    'CAPSULE_TRUNCATED',
    (pl) => {
      pl.plaintextSize = 2 ** 40
    },
  )
  return v
}

/** Writes all version 2 vectors to `dir`, removing stale files. */
export function writeVectorsV2(dir: string): number {
  mkdirSync(dir, { recursive: true })
  for (const f of readdirSync(dir)) rmSync(join(dir, f))
  const vectors = generateVectorsV2()
  for (const vec of vectors) writeFileSync(join(dir, vec.name), renderVector(vec))
  return vectors.length
}

if (import.meta.main) {
  const dir = new URL('../test/vectors-v2/', import.meta.url).pathname
  console.log(`wrote ${writeVectorsV2(dir)} vectors to ${dir}`)
}
