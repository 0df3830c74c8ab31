/**
 * Generates the test vectors in test/vectors/ (CCTV style: a few `key: value` lines, a blank
 * line, then the capsule bytes). Deterministic: all keys, ids and times are fixed, sealing
 * has no randomness, and signatures are RFC 6979. `test/vectors.test.ts` re-runs this
 * generator and fails if the committed files drift.
 *
 *   node scripts/generate-vectors.ts        # rewrite test/vectors/
 */
import { createHash } from 'node:crypto'
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { decode, encode, rfc8949EncodeOptions } from 'cborg'
import { signDigest } from '../src/eip712/signature.ts'
import { hashTypedData } from '../src/eip712/typed-data.ts'
import { concatBytes } from '../src/encoding/bytes.ts'
import {
  addressFromPrivateKey,
  CAPSULE_PREAMBLE_LENGTH,
  CAPSULE_SIGNATURE_LENGTH,
  type CreateCapsuleHeaderParameters,
  capsuleTypedData,
  createCapsuleHeader,
  encodeCapsuleHeader,
  MAX_RECEIVERS,
  MAX_STRING_LENGTH,
  MAX_WRAPPED_KEY_LENGTH,
  MAX_WRAPPED_KEYS,
  parseCapsuleHeader,
  sealCapsule,
  signCapsuleHeader,
} from '../src/index.ts'
import { derivePayloadKey } from '../src/keys.ts'
import { encodeCapsulePrefix } from '../src/parse.ts'
import { encryptChunk } from '../src/payload.ts'
import {
  BASE,
  build,
  DATA_KEY,
  detBytes,
  OTHER_KEY,
  OWNER_KEY,
  WRONG_KEY,
} from '../test/fixtures.ts'

export interface Vector {
  name: string
  description: string
  expect: 'success' | 'failure'
  error?: string
  dataKey: Uint8Array
  /** Expected plaintext (success only). */
  plaintext?: Uint8Array
  capsule: Uint8Array
}

const CS = 64
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

/** Renders a vector file: `key: value` lines, a blank line, then the capsule bytes. */
export function renderVector(v: Vector): Uint8Array {
  const lines = [`description: ${v.description}`, `expect: ${v.expect}`]
  if (v.error) lines.push(`error: ${v.error}`)
  lines.push(`data key: ${hex(v.dataKey)}`)
  if (v.plaintext) {
    lines.push(`plaintext size: ${v.plaintext.length}`)
    lines.push(`plaintext sha256: ${createHash('sha256').update(v.plaintext).digest('hex')}`)
  }
  return concatBytes(new TextEncoder().encode(`${lines.join('\n')}\n\n`), v.capsule)
}

/** Parses a vector file back into its fields and capsule bytes. */
export function parseVector(bytes: Uint8Array): {
  fields: Record<string, string>
  capsule: Uint8Array
} {
  const sep = Buffer.from(bytes).indexOf('\n\n')
  const fields: Record<string, string> = {}
  for (const line of Buffer.from(bytes.subarray(0, sep)).toString('utf8').split('\n')) {
    const i = line.indexOf(': ')
    fields[line.slice(0, i)] = line.slice(i + 2)
  }
  return { fields, capsule: bytes.subarray(sep + 2) }
}

/** Offsets of the parts of a capsule. */
function layout(capsule: Uint8Array) {
  const p = parseCapsuleHeader(capsule)
  const chunk = (i: number) => ({
    start: p.payloadOffset + i * (CS + 16),
    end: Math.min(p.payloadOffset + (i + 1) * (CS + 16), p.capsuleLength),
  })
  return {
    p,
    chunk,
    headerStart: CAPSULE_PREAMBLE_LENGTH,
    sigStart: p.payloadOffset - CAPSULE_SIGNATURE_LENGTH,
  }
}

function flip(bytes: Uint8Array, offset: number, bit = 0): Uint8Array {
  const out = bytes.slice()
  out[offset] = (out[offset] as number) ^ (1 << bit)
  return out
}

/** Rebuilds a capsule around raw (possibly invalid) header bytes, keeping the payload. */
function withHeaderBytes(
  capsule: Uint8Array,
  headerBytes: Uint8Array,
  signature?: Uint8Array,
): Uint8Array {
  const { p } = layout(capsule)
  return concatBytes(
    encodeCapsulePrefix(headerBytes, signature ?? p.signature),
    capsule.subarray(p.payloadOffset),
  )
}

type RawHeader = Record<string, Record<string, unknown> & unknown>

/** Decodes the header CBOR of a capsule into a plain object for mutation. */
function rawHeader(capsule: Uint8Array): Record<string, Record<string, unknown> & unknown> {
  return decode(layout(capsule).p.headerBytes) as Record<string, Record<string, unknown>>
}

const success = (name: string, description: string, b: ReturnType<typeof build>): Vector => ({
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
  dataKey = DATA_KEY,
): Vector => ({
  name,
  description,
  expect: 'failure',
  error,
  dataKey,
  capsule,
})

/** All vectors, in a fixed order. */
export function generateVectors(): Vector[] {
  const v: Vector[] = []
  const pt = (n: number) => detBytes(`plaintext ${n}`, n)

  // Valid capsules.
  v.push(success('valid-empty', 'empty payload: one empty final chunk', build(pt(0), CS)))
  v.push(success('valid-one-byte', 'one byte payload', build(pt(1), CS)))
  v.push(
    success(
      'valid-chunk-minus-one',
      'chunk size - 1 bytes: one short final chunk',
      build(pt(CS - 1), CS),
    ),
  )
  v.push(
    success(
      'valid-chunk',
      'exactly one chunk: one full final chunk, no empty chunk after it',
      build(pt(CS), CS),
    ),
  )
  v.push(
    success(
      'valid-chunk-plus-one',
      'chunk size + 1: a full chunk then a 1-byte final chunk',
      build(pt(CS + 1), CS),
    ),
  )
  const multi = build(pt(5 * CS + 17), CS)
  v.push(success('valid-multi-chunk', 'six chunks, the last one short', multi))
  v.push(
    success(
      'valid-multi-chunk-exact',
      'four full chunks, the last one full and final',
      build(pt(4 * CS), CS),
    ),
  )
  v.push(
    success(
      'valid-default-chunk-size',
      'default 1 MiB chunk size, 100 byte payload',
      build(pt(100), 1024 * 1024),
    ),
  )
  v.push(
    success(
      'valid-data-runtime',
      'runtime kind data, no receivers, no wrapped keys',
      build(pt(10), CS, { runtime: { kind: 'data' }, receivers: [] }),
    ),
  )
  const long = (label: string, n: number) => `${label}${'x'.repeat(n - label.length)}`
  const maxHeader: Partial<CreateCapsuleHeaderParameters> = {
    keyguard: {
      peerId: long('peer', MAX_STRING_LENGTH),
      keyId: long('key', 128),
      wrapScheme: long('scheme', 64),
    },
    runtime: {
      kind: 'wasi',
      entry: long('entry', MAX_STRING_LENGTH),
      memoryLimit: 2 ** 53 - 1,
      timeLimit: 2 ** 53 - 1,
    },
    receivers: Array.from({ length: MAX_RECEIVERS }, (_, i) => ({
      publicKey: detBytes(`max receiver ${i}`, 32),
      peerId: long(`peer${i}-`, MAX_STRING_LENGTH),
    })),
    wrappedKeys: Array.from({ length: MAX_WRAPPED_KEYS }, (_, i) => ({
      scheme: long(`s${i}-`, 64),
      keyId: long(`key${i}-`, 128),
      ciphertext: detBytes(`max wrapped ${i}`, MAX_WRAPPED_KEY_LENGTH),
    })),
    createdAt: 2 ** 53 - 1,
  }
  v.push(
    success(
      'valid-max-header',
      'every header field and list at its maximum',
      build(pt(3), CS, maxHeader),
    ),
  )
  v.push(
    success(
      'valid-wrapped-keys',
      'TPM- and recovery-wrapped keys carried in the header',
      build(pt(70), CS, {
        wrappedKeys: [
          {
            scheme: 'tpm2-rsa-oaep-sha256',
            keyId: 'tpm:0x81000010',
            ciphertext: detBytes('tpm wrapped', 256),
          },
          {
            scheme: 'hpke-x25519-recovery',
            keyId: 'recovery:0',
            ciphertext: detBytes('recovery wrapped', 80),
          },
        ],
      }),
    ),
  )

  // Container and header encoding.
  const c = multi.capsule
  const L = layout(c)
  v.push(failure('bad-magic', 'first byte of the magic changed', 'CAPSULE_FORMAT', flip(c, 0)))
  const v3 = c.slice()
  v3[7] = 3
  v.push(failure('unknown-version', 'version byte 3', 'CAPSULE_VERSION', v3))
  const v2 = c.slice()
  v2[7] = 2
  v.push(
    failure(
      'version-2-preamble-over-version-1-header',
      'preamble says version 2, the header is a valid version 1 header',
      'CAPSULE_FORMAT',
      v2,
    ),
  )
  v.push(
    failure('truncated-in-magic', 'only the first 4 bytes', 'CAPSULE_TRUNCATED', c.slice(0, 4)),
  )
  v.push(
    failure(
      'truncated-in-header',
      'ends in the middle of the CBOR header',
      'CAPSULE_TRUNCATED',
      c.slice(0, L.headerStart + 20),
    ),
  )
  const over = c.slice()
  new DataView(over.buffer).setUint32(8, 0xffffffff, false)
  v.push(
    failure(
      'header-length-overflow',
      'header length 0xffffffff, over the 64 KiB limit',
      'CAPSULE_LIMIT',
      over,
    ),
  )
  const past = c.slice()
  new DataView(past.buffer).setUint32(8, 60_000, false)
  v.push(
    failure(
      'header-length-past-end',
      'header length within the limit but past the end of the capsule',
      'CAPSULE_TRUNCATED',
      past,
    ),
  )
  const zero = c.slice()
  new DataView(zero.buffer).setUint32(8, 0, false)
  v.push(failure('header-length-zero', 'header length 0', 'CAPSULE_FORMAT', zero))

  const hb = L.p.headerBytes
  const created = Buffer.from([0x1a, 0x6a, 0xb1, 0x3b, 0x80]) // createdAt 1790000000 as a 4-byte uint
  const at = Buffer.from(hb).indexOf(created)
  if (at < 0) throw new Error('createdAt encoding not found')
  const nonMinimal = concatBytes(
    hb.subarray(0, at),
    new Uint8Array([0x1b, 0, 0, 0, 0]),
    hb.subarray(at + 1),
  )
  v.push(
    failure(
      'non-canonical-integer',
      'createdAt encoded as an 8-byte integer',
      'CAPSULE_FORMAT',
      withHeaderBytes(c, nonMinimal),
    ),
  )
  const reversed = encode(rawHeader(c), {
    ...rfc8949EncodeOptions,
    mapSorter: (a, b) =>
      -(rfc8949EncodeOptions.mapSorter as (x: unknown, y: unknown) => number)(a, b),
  })
  v.push(
    failure(
      'non-canonical-key-order',
      'map keys in reverse order',
      'CAPSULE_FORMAT',
      withHeaderBytes(c, reversed),
    ),
  )
  // Indefinite-length map: 0xbf ... 0xff around the same entries.
  const indefinite = concatBytes(new Uint8Array([0xbf]), hb.subarray(1), new Uint8Array([0xff]))
  v.push(
    failure(
      'non-canonical-indefinite-map',
      'top-level map with indefinite length',
      'CAPSULE_FORMAT',
      withHeaderBytes(c, indefinite),
    ),
  )
  v.push(
    failure(
      'header-trailing-bytes',
      'one byte after the CBOR map, inside the header length',
      'CAPSULE_FORMAT',
      withHeaderBytes(c, concatBytes(hb, new Uint8Array([0]))),
    ),
  )
  const unknown = rawHeader(c)
  unknown.zzz = 1 as never
  v.push(
    failure(
      'unknown-header-field',
      'an extra top-level key',
      'CAPSULE_FORMAT',
      withHeaderBytes(c, encode(unknown, rfc8949EncodeOptions)),
    ),
  )
  const bigChunk = rawHeader(c)
  ;(bigChunk.payload as Record<string, unknown>).chunkSize = 32 * 1024 * 1024
  v.push(
    failure(
      'oversized-chunk-size',
      'chunk size 32 MiB, over the 16 MiB limit',
      'CAPSULE_LIMIT',
      withHeaderBytes(c, encode(bigChunk, rfc8949EncodeOptions)),
    ),
  )
  const oddChunk = rawHeader(c)
  ;(oddChunk.payload as Record<string, unknown>).chunkSize = 100
  v.push(
    failure(
      'chunk-size-not-power-of-two',
      'chunk size 100',
      'CAPSULE_FORMAT',
      withHeaderBytes(c, encode(oddChunk, rfc8949EncodeOptions)),
    ),
  )
  const suite = rawHeader(c)
  ;(suite.payload as Record<string, unknown>).cipherSuite = 2
  v.push(
    failure(
      'unknown-cipher-suite',
      'cipher suite 2',
      'CAPSULE_FORMAT',
      withHeaderBytes(c, encode(suite, rfc8949EncodeOptions)),
    ),
  )
  const hv = rawHeader(c)
  hv.version = 2 as never
  v.push(
    failure(
      'header-version-mismatch',
      'preamble says version 1, header says 2',
      'CAPSULE_FORMAT',
      withHeaderBytes(c, encode(hv, rfc8949EncodeOptions)),
    ),
  )
  const many = rawHeader(c)
  many.receivers = Array.from({ length: MAX_RECEIVERS + 1 }, (_, i) => ({
    publicKey: detBytes(`r${i}`, 32),
  })) as never
  v.push(
    failure(
      'too-many-receivers',
      `${MAX_RECEIVERS + 1} receivers`,
      'CAPSULE_LIMIT',
      withHeaderBytes(c, encode(many, rfc8949EncodeOptions)),
    ),
  )

  // Format error or limit error (SPEC §3.1): LIMIT only for a value of the right type over a
  // numeric bound of §4; everything else, including what the strict CBOR decoder refuses
  // (integers past 2^53 - 1), is FORMAT; the first failing check decides.
  const headerLimit = c.slice()
  new DataView(headerLimit.buffer).setUint32(8, 65_537, false)
  v.push(
    failure(
      'header-length-limit-plus-one',
      'header length 65537, one over the 64 KiB limit',
      'CAPSULE_LIMIT',
      headerLimit,
    ),
  )
  const bigInt = concatBytes(
    hb.subarray(0, at),
    new Uint8Array([0x1b, 0x00, 0x20, 0, 0, 0, 0, 0, 0]),
    hb.subarray(at + created.length),
  )
  v.push(
    failure(
      'integer-over-safe-range',
      'createdAt = 2^53, one past the largest integer of the data model (the decoder refuses it)',
      'CAPSULE_FORMAT',
      withHeaderBytes(c, bigInt),
    ),
  )
  const versionAt = Buffer.from(hb).indexOf(Buffer.from('\x67version\x01', 'latin1'))
  if (versionAt < 0) throw new Error('version encoding not found')
  const floatVersion = concatBytes(
    hb.subarray(0, versionAt + 8),
    new Uint8Array([0xf9, 0x3c, 0x00]),
    hb.subarray(versionAt + 9),
  )
  v.push(
    failure(
      'float-for-integer',
      'version encoded as the half-precision float 1.0',
      'CAPSULE_FORMAT',
      withHeaderBytes(c, floatVersion),
    ),
  )
  const longPeer = rawHeader(c)
  ;(longPeer.keyguard as Record<string, unknown>).peerId = 'p'.repeat(MAX_STRING_LENGTH + 1)
  v.push(
    failure(
      'string-over-limit',
      `keyguard.peerId of ${MAX_STRING_LENGTH + 1} bytes`,
      'CAPSULE_LIMIT',
      withHeaderBytes(c, encode(longPeer, rfc8949EncodeOptions)),
    ),
  )
  const emptyPeer = rawHeader(c)
  ;(emptyPeer.keyguard as Record<string, unknown>).peerId = ''
  v.push(
    failure(
      'string-empty',
      'keyguard.peerId empty (under its lower bound: a format error, not a limit)',
      'CAPSULE_FORMAT',
      withHeaderBytes(c, encode(emptyPeer, rfc8949EncodeOptions)),
    ),
  )
  const wrappedKey = (i: number, length: number) => ({
    scheme: 'hpke-x25519-recovery',
    keyId: `k${i}`,
    ciphertext: detBytes(`wk${i}`, length),
  })
  const bigWrap = rawHeader(c)
  bigWrap.wrappedKeys = [wrappedKey(0, MAX_WRAPPED_KEY_LENGTH + 1)] as never
  v.push(
    failure(
      'wrapped-key-over-limit',
      `a wrapped key of ${MAX_WRAPPED_KEY_LENGTH + 1} bytes`,
      'CAPSULE_LIMIT',
      withHeaderBytes(c, encode(bigWrap, rfc8949EncodeOptions)),
    ),
  )
  const manyWraps = rawHeader(c)
  manyWraps.wrappedKeys = Array.from({ length: MAX_WRAPPED_KEYS + 1 }, (_, i) =>
    wrappedKey(i, 80),
  ) as never
  v.push(
    failure(
      'too-many-wrapped-keys',
      `${MAX_WRAPPED_KEYS + 1} wrapped keys`,
      'CAPSULE_LIMIT',
      withHeaderBytes(c, encode(manyWraps, rfc8949EncodeOptions)),
    ),
  )
  const bothChunk = rawHeader(c)
  ;(bothChunk.payload as Record<string, unknown>).chunkSize = 16 * 1024 * 1024 + 64
  v.push(
    failure(
      'chunk-size-over-limit-and-not-power-of-two',
      'chunk size 16 MiB + 64: over the limit and not a power of two; the limit is checked first',
      'CAPSULE_LIMIT',
      withHeaderBytes(c, encode(bothChunk, rfc8949EncodeOptions)),
    ),
  )

  // SPEC rules that had no vector (review): each value rule of §4.2 and each thing the strict
  // decoder refuses (§3), with the code the rule gives.
  const mutated = (
    name: string,
    description: string,
    error: string,
    edit: (h: RawHeader) => void,
  ) => {
    const h = rawHeader(c)
    edit(h)
    v.push(failure(name, description, error, withHeaderBytes(c, encode(h, rfc8949EncodeOptions))))
  }
  const sub = (h: RawHeader, key: string) => h[key] as Record<string, unknown>
  mutated(
    'chunk-size-under-minimum',
    'chunk size 32, under the minimum of 64',
    'CAPSULE_FORMAT',
    (h) => {
      sub(h, 'payload').chunkSize = 32
    },
  )
  mutated('chain-id-zero', 'policy.chainId 0 (chain ids are > 0)', 'CAPSULE_FORMAT', (h) => {
    sub(h, 'policy').chainId = 0
  })
  mutated('negative-integer', 'createdAt -1 (CBOR major type 1)', 'CAPSULE_FORMAT', (h) => {
    h.createdAt = -1 as never
  })
  mutated('missing-field', 'keyguard.keyId left out', 'CAPSULE_FORMAT', (h) => {
    delete sub(h, 'keyguard').keyId
  })
  mutated('wrong-byte-length', 'owner of 19 bytes', 'CAPSULE_FORMAT', (h) => {
    h.owner = (h.owner as unknown as Uint8Array).subarray(0, 19) as never
  })
  mutated('wrong-type', 'createdAt as the text "1790000000"', 'CAPSULE_FORMAT', (h) => {
    h.createdAt = '1790000000' as never
  })
  mutated('null-value', 'runtime.entry null (no null in the data model)', 'CAPSULE_FORMAT', (h) => {
    sub(h, 'runtime').entry = null
  })
  mutated(
    'unknown-runtime-kind',
    'runtime.kind "python" (outside its set)',
    'CAPSULE_FORMAT',
    (h) => {
      sub(h, 'runtime').kind = 'python'
    },
  )
  mutated(
    'runtime-kind-over-limit',
    'runtime.kind of 17 bytes: over its 16-byte bound, checked before the set',
    'CAPSULE_LIMIT',
    (h) => {
      sub(h, 'runtime').kind = 'q'.repeat(17)
    },
  )
  mutated('quickjs-without-entry', 'runtime quickjs with no entry', 'CAPSULE_FORMAT', (h) => {
    delete sub(h, 'runtime').entry
  })
  mutated(
    'oci-entry-not-a-digest',
    'runtime oci whose entry is "main", not sha256:<64 hex>',
    'CAPSULE_FORMAT',
    (h) => {
      sub(h, 'runtime').kind = 'oci'
      sub(h, 'runtime').entry = 'main'
    },
  )
  mutated('key-id-over-limit', 'keyguard.keyId of 129 bytes', 'CAPSULE_LIMIT', (h) => {
    sub(h, 'keyguard').keyId = 'k'.repeat(129)
  })
  mutated(
    'wrap-scheme-over-limit',
    'keyguard.wrapScheme of 65 valid characters: over 64 bytes, checked before the syntax',
    'CAPSULE_LIMIT',
    (h) => {
      sub(h, 'keyguard').wrapScheme = 'a'.repeat(65)
    },
  )
  mutated(
    'wrap-scheme-syntax',
    'keyguard.wrapScheme "TPM2" (upper case)',
    'CAPSULE_FORMAT',
    (h) => {
      sub(h, 'keyguard').wrapScheme = 'TPM2'
    },
  )
  // Byte-level: what the strict decoder refuses.
  const topCount = hb[0] as number
  if (topCount < 0xa1 || topCount > 0xb6) throw new Error('top-level map header not a short map')
  v.push(
    failure(
      'duplicate-key',
      'version twice (map size + 1, a second "version": 1 at the end)',
      'CAPSULE_FORMAT',
      withHeaderBytes(
        c,
        concatBytes(
          new Uint8Array([topCount + 1]),
          hb.subarray(1),
          new Uint8Array([0x67, ...Buffer.from('version'), 0x01]),
        ),
      ),
    ),
  )
  const createdKey = Buffer.from('\x69createdAt', 'latin1')
  const createdKeyAt = Buffer.from(hb).indexOf(createdKey)
  if (createdKeyAt < 0) throw new Error('createdAt key not found')
  const afterKey = createdKeyAt + createdKey.length
  v.push(
    failure(
      'tagged-value',
      'tag 1 (epoch time) around createdAt',
      'CAPSULE_FORMAT',
      withHeaderBytes(
        c,
        concatBytes(hb.subarray(0, afterKey), new Uint8Array([0xc1]), hb.subarray(afterKey)),
      ),
    ),
  )
  const keyIdText = Buffer.from(multi.header.keyguard.keyId, 'utf8')
  const keyIdAt = Buffer.from(hb).indexOf(keyIdText)
  if (keyIdAt < 0 || keyIdText.length < 2) throw new Error('keyguard.keyId not found')
  const badUtf8 = hb.slice()
  badUtf8[keyIdAt + 1] = 0xff
  v.push(
    failure(
      'invalid-utf8',
      'keyguard.keyId with a 0xff byte (not UTF-8), same length',
      'CAPSULE_FORMAT',
      withHeaderBytes(c, badUtf8),
    ),
  )

  // Header signature.
  const idAt = Buffer.from(hb).indexOf(Buffer.from(multi.header.capsuleId))
  v.push(
    failure(
      'flipped-bit-header',
      'one bit of the capsule id flipped (header still parses)',
      'CAPSULE_SIGNATURE',
      flip(c, L.headerStart + idAt + 3),
    ),
  )
  v.push(
    failure(
      'flipped-bit-signature',
      'one bit of r flipped',
      'CAPSULE_SIGNATURE',
      flip(c, L.sigStart + 5),
    ),
  )
  const badV = c.slice()
  badV[L.sigStart + 64] = 29
  v.push(failure('signature-bad-v', 'v = 29', 'CAPSULE_SIGNATURE', badV))
  const sig = multi.signature
  const rawV = c.slice()
  rawV[L.sigStart + 64] = (sig[64] as number) - 27
  v.push(
    failure(
      'signature-v-recovery-id',
      'v = 0 or 1 (the raw recovery id some signers emit) instead of 27 or 28',
      'CAPSULE_SIGNATURE',
      rawV,
    ),
  )
  const otherParity = c.slice()
  otherParity[L.sigStart + 64] = sig[64] === 27 ? 28 : 27
  v.push(
    failure(
      'signature-wrong-parity',
      'v switched between 27 and 28 (recovers another key)',
      'CAPSULE_SIGNATURE',
      otherParity,
    ),
  )
  const zeroS = sig.slice()
  zeroS.fill(0, 32, 64)
  v.push(failure('signature-s-zero', 's = 0', 'CAPSULE_SIGNATURE', withHeaderBytes(c, hb, zeroS)))
  const bigR = sig.slice()
  bigR.set(Buffer.from((secp256k1.Point.CURVE().n + 1n).toString(16).padStart(64, '0'), 'hex'), 0)
  v.push(
    failure(
      'signature-r-over-order',
      'r = n + 1, past the curve order',
      'CAPSULE_SIGNATURE',
      withHeaderBytes(c, hb, bigR),
    ),
  )
  const s = BigInt(`0x${hex(sig.subarray(32, 64))}`)
  const highS = sig.slice()
  highS.set(Buffer.from((secp256k1.Point.CURVE().n - s).toString(16).padStart(64, '0'), 'hex'), 32)
  highS[64] = sig[64] === 27 ? 28 : 27
  v.push(
    failure(
      'signature-high-s',
      'the malleated (high-s) twin of a valid signature',
      'CAPSULE_SIGNATURE',
      withHeaderBytes(c, hb, highS),
    ),
  )
  v.push(
    failure(
      'signature-other-key',
      'signed by a key that is not the header owner',
      'CAPSULE_SIGNATURE',
      withHeaderBytes(c, hb, signCapsuleHeaderUnchecked(hb, OTHER_KEY)),
    ),
  )
  // A new header (other owner, validly signed) in front of the original chunks.
  const other = createCapsuleHeader({
    ...BASE,
    owner: addressFromPrivateKey(OTHER_KEY),
    chunkSize: CS,
    dataKey: DATA_KEY,
    plaintext: multi.plaintext,
  })
  v.push(
    failure(
      'header-swapped',
      'another validly signed header (other owner) in front of the original chunks',
      'CAPSULE_INTEGRITY',
      withHeaderBytes(c, encodeCapsuleHeader(other), signCapsuleHeader(other, OTHER_KEY)),
    ),
  )

  // Payload.
  for (let i = 0; i < L.p.chunkCount; i++) {
    v.push(
      failure(
        `flipped-bit-chunk-${i}`,
        `one bit flipped in chunk ${i}`,
        'CAPSULE_INTEGRITY',
        flip(c, L.chunk(i).start + 7, 5),
      ),
    )
  }
  v.push(
    failure(
      'flipped-bit-last-tag',
      'one bit flipped in the last chunk tag',
      'CAPSULE_INTEGRITY',
      flip(c, c.length - 1),
    ),
  )
  v.push(
    failure(
      'truncated-after-header',
      'signature present, no chunks',
      'CAPSULE_TRUNCATED',
      c.slice(0, L.p.payloadOffset),
    ),
  )
  v.push(
    failure(
      'truncated-mid-chunk',
      'ends in the middle of chunk 2',
      'CAPSULE_TRUNCATED',
      c.slice(0, L.chunk(2).start + 30),
    ),
  )
  v.push(
    failure(
      'missing-last-chunk',
      'the final chunk is gone',
      'CAPSULE_TRUNCATED',
      c.slice(0, L.chunk(L.p.chunkCount - 1).start),
    ),
  )
  const ch = (i: number) => c.subarray(L.chunk(i).start, L.chunk(i).end)
  v.push(
    failure(
      'swapped-chunks',
      'chunks 1 and 2 swapped',
      'CAPSULE_INTEGRITY',
      concatBytes(c.subarray(0, L.chunk(1).start), ch(2), ch(1), c.subarray(L.chunk(3).start)),
    ),
  )
  v.push(
    failure(
      'duplicated-chunk',
      'chunk 1 repeated',
      'CAPSULE_INTEGRITY',
      concatBytes(c.subarray(0, L.chunk(2).start), ch(1), c.subarray(L.chunk(2).start)),
    ),
  )
  v.push(
    failure(
      'duplicated-last-chunk',
      'the final chunk appended twice',
      'CAPSULE_INTEGRITY',
      concatBytes(c, ch(L.p.chunkCount - 1)),
    ),
  )
  v.push(
    failure(
      'trailing-byte',
      'one byte after the final chunk',
      'CAPSULE_INTEGRITY',
      concatBytes(c, new Uint8Array([0])),
    ),
  )
  v.push(failure('wrong-key', 'opened with a different data key', 'CAPSULE_KEY', c, WRONG_KEY))

  // Encoder bugs a conforming sealer never produces.
  const exact = build(pt(4 * CS), CS)
  const key = derivePayloadKey(DATA_KEY, exact.header.capsuleId)
  const ep = parseCapsuleHeader(exact.capsule)
  const body: Uint8Array[] = []
  for (let i = 0; i < 4; i++)
    body.push(
      ...encryptChunk(key, ep.headerHash, i, false, [
        exact.plaintext.subarray(i * CS, (i + 1) * CS),
      ]),
    )
  body.push(...encryptChunk(key, ep.headerHash, 4, true, []))
  v.push(
    failure(
      'empty-final-chunk',
      'full chunks not marked last, then an empty final chunk',
      'CAPSULE_FORMAT',
      concatBytes(exact.capsule.subarray(0, ep.payloadOffset), ...body),
    ),
  )
  const early = build(pt(3 * CS), CS)
  const kp = parseCapsuleHeader(early.capsule)
  const key2 = derivePayloadKey(DATA_KEY, early.header.capsuleId)
  const body2: Uint8Array[] = []
  for (let i = 0; i < 3; i++)
    body2.push(
      ...encryptChunk(key2, kp.headerHash, i, i === 0, [
        early.plaintext.subarray(i * CS, (i + 1) * CS),
      ]),
    )
  v.push(
    failure(
      'last-flag-on-first-chunk',
      'chunk 0 marked last in a three-chunk payload',
      'CAPSULE_INTEGRITY',
      concatBytes(early.capsule.subarray(0, kp.payloadOffset), ...body2),
    ),
  )
  // Header commits to one plaintext, chunks carry another (a data-key holder re-encrypting).
  const real = pt(2 * CS)
  const forgedHeader = createCapsuleHeader({
    ...BASE,
    chunkSize: CS,
    dataKey: DATA_KEY,
    plaintext: real,
  })
  const forged = sealCapsule({
    header: forgedHeader,
    signature: signCapsuleHeader(forgedHeader, OWNER_KEY),
    dataKey: DATA_KEY,
    plaintext: detBytes('forged', 2 * CS),
  })
  v.push(
    failure(
      'plaintext-commitment-mismatch',
      'chunks authenticate but the plaintext is not the one the owner committed to',
      'CAPSULE_INTEGRITY',
      forged,
    ),
  )
  v.push(
    failure(
      'plaintext-commitment-mismatch-and-trailing-byte',
      'the commitment fails and a byte follows the last chunk: the commitment is checked first (SPEC §7)',
      'CAPSULE_INTEGRITY',
      concatBytes(forged, new Uint8Array([0])),
    ),
  )
  return v
}

/** Signs the header in `headerBytes` with any key, skipping the owner check. */
function signCapsuleHeaderUnchecked(headerBytes: Uint8Array, key: Uint8Array): Uint8Array {
  const header = parseCapsuleHeader(encodeCapsulePrefix(headerBytes, new Uint8Array(65))).header
  return signDigest(hashTypedData(capsuleTypedData(header)), key)
}

/** Writes all vectors to `dir`, removing stale files. */
export function writeVectors(dir: string): number {
  mkdirSync(dir, { recursive: true })
  for (const f of readdirSync(dir)) rmSync(join(dir, f))
  const vectors = generateVectors()
  for (const vec of vectors) writeFileSync(join(dir, vec.name), renderVector(vec))
  return vectors.length
}

if (import.meta.main) {
  const dir = new URL('../test/vectors/', import.meta.url).pathname
  console.log(`wrote ${writeVectors(dir)} vectors to ${dir}`)
}
