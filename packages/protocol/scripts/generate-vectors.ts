/**
 * Generates `test/vectors/*.txt`: one file per case, CCTV style — `key: value` lines (the
 * protocol, the message type the decoder expects, the frame limit, the expected outcome and,
 * for failures, the field at fault), a blank line, then the whole frame (length prefix +
 * body) in hex, 32 bytes a line. Deterministic: fixed ids and a fixed well-known test key
 * (anvil/hardhat account 0), so a diff of the files is a diff of the format.
 *
 * Run `node scripts/generate-vectors.ts` to rewrite them; `test/vectors.test.ts` fails when
 * the files drift from this script.
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { encodeVarint } from '../src/frame.ts'
import {
  type AccessDomain,
  type AccessRequest,
  addressOfPrivateKey,
  encodeAccessRequest,
  encodeAccessResponse,
  encodeErrorReply,
  encodeFrame,
  encodeKeyRelease,
  encodeReleaseAck,
  FAST_PATH_PROTOCOL,
  KEY_RELEASE_PROTOCOL,
  MAX_CONTROL_FRAME,
  signAccessRequest,
  toChecksumAddress,
} from '../src/index.ts'

/** Anvil / hardhat test account 0. Public knowledge; never holds value. */
export const VECTOR_PRIVATE_KEY = hex(
  'ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80',
)
export const VECTOR_DOMAIN: AccessDomain = {
  chainId: 31337n,
  verifyingContract: '0x5FbDB2315678afecb367f032d93F642f64180aa3',
}

export function hex(s: string): Uint8Array {
  const out = new Uint8Array(s.length / 2)
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(s.slice(2 * i, 2 * i + 2), 16)
  return out
}
export function toHex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('')
}
const fill = (n: number, v: number): Uint8Array => new Uint8Array(n).fill(v)
const seq = (n: number, start: number): Uint8Array =>
  Uint8Array.from({ length: n }, (_, i) => (start + i) & 0xff)

// ---- raw CBOR writer, for the non-canonical and malformed cases -------------------------
function head(major: number, n: number): Uint8Array {
  const m = major << 5
  if (n < 24) return new Uint8Array([m | n])
  if (n < 0x100) return new Uint8Array([m | 24, n])
  if (n < 0x10000) return new Uint8Array([m | 25, n >> 8, n & 0xff])
  return new Uint8Array([m | 26, (n >>> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff])
}
function cat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let o = 0
  for (const p of parts) {
    out.set(p, o)
    o += p.length
  }
  return out
}
const text = (s: string): Uint8Array => {
  const b = new TextEncoder().encode(s)
  return cat(head(3, b.length), b)
}
const bytes = (b: Uint8Array): Uint8Array => cat(head(2, b.length), b)
const uint = (n: number): Uint8Array => head(0, n)
const TRUE = new Uint8Array([0xf5])
/** A definite map from already-encoded key/value pairs, in the order given. */
const map = (pairs: [string, Uint8Array][]): Uint8Array =>
  cat(head(5, pairs.length), ...pairs.flatMap(([k, v]) => [text(k), v]))

// ---- fixtures -------------------------------------------------------------------------
const grantId = seq(32, 0x10)
const capsuleId = seq(32, 0x40)
const hpke80 = seq(80, 0xa0)
const keyRelease = { grantId, capsuleId, hpke: hpke80, fastPath: false }

function signedRequest(): AccessRequest {
  return signAccessRequest(
    {
      capsuleId,
      executor: addressOfPrivateKey(VECTOR_PRIVATE_KEY),
      ephemeralKey: seq(32, 0x20),
      measurement: seq(32, 0x30),
      nonce: seq(32, 0x50),
      expiry: 1_900_000_000n,
      fee: 1_000_000_000_000_000n,
      jobParams: seq(4, 0x60),
      jobParamsHash: keccak_256(seq(4, 0x60)),
    },
    VECTOR_DOMAIN,
    VECTOR_PRIVATE_KEY,
  )
}

/** Canonical key-release map pairs (sorted: shortest key first, then bytewise). */
function keyReleasePairs(over: Partial<Record<string, Uint8Array>> = {}): [string, Uint8Array][] {
  const base: Record<string, Uint8Array> = {
    t: text('key-release'),
    v: uint(1),
    hpke: bytes(hpke80),
    grantId: bytes(grantId),
    fastPath: new Uint8Array([0xf4]),
    capsuleId: bytes(capsuleId),
  }
  const merged = { ...base, ...over }
  return Object.entries(merged)
    .filter(([, v]) => v !== undefined && v.length > 0)
    .sort(([a], [b]) => a.length - b.length || (a < b ? -1 : a > b ? 1 : 0)) as [
    string,
    Uint8Array,
  ][]
}

interface Vector {
  name: string
  protocol: string
  type: string
  maxSize: number
  expect: string
  field?: string
  comment: string
  frame: Uint8Array
  signer?: string
}

const ok = (
  name: string,
  protocol: string,
  type: string,
  body: Uint8Array,
  comment: string,
  extra: Partial<Vector> = {},
): Vector => ({
  name,
  protocol,
  type,
  maxSize: MAX_CONTROL_FRAME,
  expect: 'ok',
  comment,
  frame: encodeFrame(body),
  ...extra,
})
const bad = (
  name: string,
  type: string,
  body: Uint8Array,
  expect: string,
  comment: string,
  field?: string,
  protocol = KEY_RELEASE_PROTOCOL,
): Vector => ({
  name,
  protocol,
  type,
  maxSize: MAX_CONTROL_FRAME,
  expect,
  comment,
  frame: encodeFrame(body),
  ...(field === undefined ? {} : { field }),
})

/** secp256k1 group order. */
const CURVE_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n

/** The other valid ECDSA encoding of a signature: s -> n - s, v flipped. */
function highSTwin(signature: Uint8Array): Uint8Array {
  const out = signature.slice()
  const s = BigInt(`0x${Buffer.from(signature.subarray(32, 64)).toString('hex')}`)
  out.set(Buffer.from((CURVE_N - s).toString(16).padStart(64, '0'), 'hex'), 32)
  out[64] = signature[64] === 27 ? 28 : 27
  return out
}

/** The same signature with v as the raw recovery id (0 or 1). */
function rawRecoveryId(signature: Uint8Array): Uint8Array {
  const out = signature.slice()
  out[64] = (signature[64] as number) - 27
  return out
}

/** Every vector, by file name. */
export function generateVectors(): Map<string, string> {
  const req = signedRequest()
  const signer = toChecksumAddress(req.executor)
  const vectors: Vector[] = [
    // ---- valid messages
    ok(
      'key-release-chain',
      KEY_RELEASE_PROTOCOL,
      'key-release',
      encodeKeyRelease(keyRelease),
      'key release for a chain-path grant',
    ),
    ok(
      'key-release-fast-path',
      KEY_RELEASE_PROTOCOL,
      'key-release',
      encodeKeyRelease({ ...keyRelease, fastPath: true }),
      'key release for a fast-path grant',
    ),
    ok(
      'release-ack-ok',
      KEY_RELEASE_PROTOCOL,
      'release-ack',
      encodeReleaseAck({ grantId, status: 'ok' }),
      'executor opened the key',
    ),
    ok(
      'release-ack-unknown-grant',
      KEY_RELEASE_PROTOCOL,
      'release-ack',
      encodeReleaseAck({ grantId, status: 'unknown-grant' }),
      'executor has no run for this grant',
    ),
    ok(
      'release-ack-open-failed',
      KEY_RELEASE_PROTOCOL,
      'release-ack',
      encodeReleaseAck({ grantId, status: 'open-failed' }),
      'HPKE open failed at the executor',
    ),
    ok(
      'access-request-signed',
      FAST_PATH_PROTOCOL,
      'access-request',
      encodeAccessRequest(req),
      'EIP-712 signed by anvil account 0, chainId 31337, verifyingContract 0x5FbDB2315678afecb367f032d93F642f64180aa3',
      { signer },
    ),
    // SPEC §5.1: encodings a stock verifier may accept; the frame decodes, the signature not.
    ok(
      'access-request-high-s',
      FAST_PATH_PROTOCOL,
      'access-request',
      encodeAccessRequest({ ...req, signature: highSTwin(req.signature) }),
      'the high-s twin (r, n - s, v xor 1) of access-request-signed: EVM ecrecover accepts it, the keyguard and the AccessController refuse it',
      { signer: 'WIRE_SIGNATURE' },
    ),
    ok(
      'access-request-v-recovery-id',
      FAST_PATH_PROTOCOL,
      'access-request',
      encodeAccessRequest({ ...req, signature: rawRecoveryId(req.signature) }),
      'v = 0/1 (the raw recovery id) instead of 27/28: ethers recovers the executor from it, the keyguard and the AccessController refuse it',
      { signer: 'WIRE_SIGNATURE' },
    ),
    ok(
      'access-response-granted',
      FAST_PATH_PROTOCOL,
      'access-response',
      encodeAccessResponse({ status: 'granted', grantId }),
      'granted; key follows on key-release',
    ),
    ok(
      'access-response-granted-inline',
      FAST_PATH_PROTOCOL,
      'access-response',
      encodeAccessResponse({
        status: 'granted',
        grantId,
        keyRelease: { ...keyRelease, fastPath: true },
      }),
      'granted with the key release inline',
    ),
    ok(
      'access-response-policy-denied',
      FAST_PATH_PROTOCOL,
      'access-response',
      encodeAccessResponse({
        status: 'refused',
        reasonCode: 'policy-denied',
        reason: 'executor not allow-listed',
      }),
      'refused by the policy contract',
    ),
    ok(
      'access-response-not-attested',
      FAST_PATH_PROTOCOL,
      'access-response',
      encodeAccessResponse({
        status: 'refused',
        reasonCode: 'not-attested',
        reason: 'evidence:QUOTE_RUN_PCR',
      }),
      'refused: the policy requires attested() and the before-quote failed',
    ),
    ok(
      'access-response-rate-limited',
      FAST_PATH_PROTOCOL,
      'access-response',
      encodeAccessResponse({ status: 'refused', reasonCode: 'rate-limited', retryAfterMs: 1500 }),
      'refused: too many requests from this peer',
    ),
    ok(
      'error-reply',
      KEY_RELEASE_PROTOCOL,
      'error',
      encodeErrorReply({ code: 'format', message: 'Missing field in key-release (field hpke)' }),
      'responder could not parse the request',
    ),

    // ---- version
    bad(
      'version-2',
      'key-release',
      map(keyReleasePairs({ v: uint(2) })),
      'WIRE_VERSION',
      'v = 2 is not spoken',
      'v',
    ),
    bad(
      'version-missing',
      'key-release',
      map(keyReleasePairs({ v: new Uint8Array(0) })),
      'WIRE_FORMAT',
      'no v field',
      'v',
    ),
    bad(
      'version-as-text',
      'key-release',
      map(keyReleasePairs({ v: text('1') })),
      'WIRE_FORMAT',
      'v is a text string',
      'v',
    ),

    // ---- field set and types
    bad(
      'missing-field',
      'key-release',
      map(keyReleasePairs({ hpke: new Uint8Array(0) })),
      'WIRE_FORMAT',
      'hpke missing',
      'hpke',
    ),
    bad(
      'unknown-field',
      'key-release',
      map(keyReleasePairs({ extra: uint(0) })),
      'WIRE_FORMAT',
      'a field the spec does not define',
      'extra',
    ),
    bad(
      'short-grant-id',
      'key-release',
      map(keyReleasePairs({ grantId: bytes(grantId.subarray(0, 31)) })),
      'WIRE_FORMAT',
      'grantId is 31 bytes',
      'grantId',
    ),
    bad(
      'long-hpke',
      'key-release',
      map(keyReleasePairs({ hpke: bytes(seq(81, 0)) })),
      'WIRE_FORMAT',
      'hpke is 81 bytes (must be 80)',
      'hpke',
    ),
    bad(
      'fast-path-as-int',
      'key-release',
      map(keyReleasePairs({ fastPath: uint(1) })),
      'WIRE_FORMAT',
      'fastPath is an integer',
      'fastPath',
    ),
    bad(
      'grant-id-as-text',
      'key-release',
      map(keyReleasePairs({ grantId: text('x'.repeat(32)) })),
      'WIRE_FORMAT',
      'grantId is a text string',
      'grantId',
    ),
    bad(
      'wrong-type-tag',
      'key-release',
      encodeReleaseAck({ grantId, status: 'ok' }),
      'WIRE_FORMAT',
      'a release-ack where a key-release is expected',
      't',
    ),
    bad(
      'unknown-status',
      'release-ack',
      map([
        ['t', text('release-ack')],
        ['v', uint(1)],
        ['status', text('maybe')],
        ['grantId', bytes(grantId)],
      ]),
      'WIRE_FORMAT',
      'status is not one of the spec values',
      'status',
    ),
    bad(
      'not-a-map',
      'key-release',
      cat(head(4, 2), uint(1), text('key-release')),
      'WIRE_FORMAT',
      'a CBOR array',
    ),

    // ---- canonical CBOR
    bad(
      'unsorted-keys',
      'key-release',
      map(keyReleasePairs().reverse()),
      'WIRE_FORMAT',
      'same fields, keys not in canonical order',
    ),
    bad(
      'non-minimal-int',
      'key-release',
      map(keyReleasePairs({ v: new Uint8Array([0x18, 0x01]) })),
      'WIRE_FORMAT',
      'v = 1 encoded in two bytes',
    ),
    bad(
      'non-minimal-length',
      'key-release',
      map(
        keyReleasePairs({
          t: cat(new Uint8Array([0x78, 11]), new TextEncoder().encode('key-release')),
        }),
      ),
      'WIRE_FORMAT',
      'an 11-byte text string with a 1-byte length argument',
    ),
    bad(
      'indefinite-map',
      'key-release',
      cat(
        new Uint8Array([0xbf]),
        ...keyReleasePairs().flatMap(([k, v]) => [text(k), v]),
        new Uint8Array([0xff]),
      ),
      'WIRE_FORMAT',
      'indefinite-length map',
    ),
    bad(
      'duplicate-key',
      'key-release',
      map([...keyReleasePairs(), ['v', uint(1)]]),
      'WIRE_FORMAT',
      'v twice',
    ),
    bad(
      'float-version',
      'key-release',
      map(keyReleasePairs({ v: new Uint8Array([0xf9, 0x3c, 0x00]) })),
      'WIRE_FORMAT',
      'v = 1.0 as a half float',
    ),
    bad(
      'tagged-bytes',
      'key-release',
      map(keyReleasePairs({ grantId: cat(new Uint8Array([0xd8, 0x40]), bytes(grantId)) })),
      'WIRE_FORMAT',
      'grantId wrapped in tag 64',
    ),
    bad(
      'trailing-cbor',
      'key-release',
      cat(encodeKeyRelease(keyRelease), uint(0)),
      'WIRE_FORMAT',
      'a second CBOR item after the map',
    ),
    bad('empty-body', 'key-release', new Uint8Array(0), 'WIRE_FORMAT', 'zero-length frame'),

    // ---- fast path
    bad(
      'expires-negative',
      'access-request',
      rawAccessRequest(req, { expiry: new Uint8Array([0x20]) }),
      'WIRE_FORMAT',
      'expiry = -1',
      'expiry',
      FAST_PATH_PROTOCOL,
    ),
    bad(
      'short-signature',
      'access-request',
      rawAccessRequest(req, { signature: bytes(req.signature.subarray(0, 64)) }),
      'WIRE_FORMAT',
      'signature is 64 bytes',
      'signature',
      FAST_PATH_PROTOCOL,
    ),
    bad(
      'inline-release-other-grant',
      'access-response',
      map([
        ['t', text('access-response')],
        ['v', uint(1)],
        ['status', text('granted')],
        ['grantId', bytes(fill(32, 0xee))],
        ['keyRelease', map(keyReleasePairs({ fastPath: TRUE }))],
      ]),
      'WIRE_FORMAT',
      'inline key release for another grant',
      'keyRelease',
      FAST_PATH_PROTOCOL,
    ),
    bad(
      'refused-unknown-code',
      'access-response',
      map([
        ['t', text('access-response')],
        ['v', uint(1)],
        ['status', text('refused')],
        ['reasonCode', text('because')],
      ]),
      'WIRE_FORMAT',
      'reasonCode not in the spec',
      'reasonCode',
      FAST_PATH_PROTOCOL,
    ),
    bad(
      'refused-long-reason',
      'access-response',
      map([
        ['t', text('access-response')],
        ['v', uint(1)],
        ['reason', text('x'.repeat(257))],
        ['status', text('refused')],
        ['reasonCode', text('policy-denied')],
      ]),
      'WIRE_FORMAT',
      'reason over 256 bytes',
      'reason',
      FAST_PATH_PROTOCOL,
    ),
  ]

  // ---- framing (the frame itself is wrong)
  const body = encodeKeyRelease(keyRelease)
  const frameCases: Vector[] = [
    {
      name: 'frame-non-minimal-varint',
      protocol: KEY_RELEASE_PROTOCOL,
      type: 'key-release',
      maxSize: MAX_CONTROL_FRAME,
      expect: 'WIRE_FORMAT',
      comment: 'the length varint padded with a trailing 0x80 0x00 group',
      frame: cat(padVarint(encodeVarint(body.length)), body),
    },
    {
      name: 'frame-too-large',
      protocol: KEY_RELEASE_PROTOCOL,
      type: 'key-release',
      maxSize: MAX_CONTROL_FRAME,
      expect: 'WIRE_TOO_LARGE',
      comment: 'declares 65537 bytes; rejected before the body is read',
      frame: cat(new Uint8Array([0x81, 0x80, 0x04]), body),
    },
    {
      name: 'frame-truncated',
      protocol: KEY_RELEASE_PROTOCOL,
      type: 'key-release',
      maxSize: MAX_CONTROL_FRAME,
      expect: 'WIRE_TRUNCATED',
      comment: 'body one byte short',
      frame: encodeFrame(body).subarray(0, body.length),
    },
    {
      name: 'frame-trailing-bytes',
      protocol: KEY_RELEASE_PROTOCOL,
      type: 'key-release',
      maxSize: MAX_CONTROL_FRAME,
      expect: 'WIRE_FORMAT',
      comment: 'a byte after the frame',
      frame: cat(encodeFrame(body), new Uint8Array([0])),
    },
  ]

  const out = new Map<string, string>()
  for (const v of [...vectors, ...frameCases]) {
    const lines = [
      `protocol: ${v.protocol}`,
      `type: ${v.type}`,
      `max-size: ${v.maxSize}`,
      `expect: ${v.expect}`,
      ...(v.field === undefined ? [] : [`field: ${v.field}`]),
      ...(v.signer === undefined ? [] : [`signer: ${v.signer}`]),
      `comment: ${v.comment}`,
      '',
      ...chunk(toHex(v.frame), 64),
      '',
    ]
    out.set(`${v.name}.txt`, lines.join('\n'))
  }
  return out
}

function feeBytes(fee: bigint): Uint8Array {
  const out = new Uint8Array(32)
  let v = fee
  for (let i = 31; i >= 0; i--) {
    out[i] = Number(v & 0xffn)
    v >>= 8n
  }
  return out
}

function rawAccessRequest(req: AccessRequest, over: Record<string, Uint8Array>): Uint8Array {
  const fields: Record<string, Uint8Array> = {
    t: text('access-request'),
    v: uint(1),
    nonce: bytes(req.nonce),
    executor: bytes(req.executor),
    capsuleId: bytes(req.capsuleId),
    expiry: head(0, Number(req.expiry)),
    fee: bytes(feeBytes(req.fee)),
    jobParams: bytes(req.jobParams),
    jobParamsHash: bytes(req.jobParamsHash),
    signature: bytes(req.signature),
    measurement: bytes(req.measurement),
    ephemeralKey: bytes(req.ephemeralKey),
    ...over,
  }
  return map(
    Object.entries(fields).sort(
      ([a], [b]) => a.length - b.length || (a < b ? -1 : a > b ? 1 : 0),
    ) as [string, Uint8Array][],
  )
}

function padVarint(v: Uint8Array): Uint8Array {
  const out = cat(v, new Uint8Array([0]))
  out[v.length - 1] = (out[v.length - 1] as number) | 0x80
  return out
}

function chunk(s: string, n: number): string[] {
  const out: string[] = []
  for (let i = 0; i < s.length; i += n) out.push(s.slice(i, i + n))
  return out.length === 0 ? [''] : out
}

/** Parses a vector file back into its header lines and frame bytes. */
export function parseVector(content: string): {
  header: Record<string, string>
  frame: Uint8Array
} {
  const [head, hexPart = ''] = content.split('\n\n')
  const header: Record<string, string> = {}
  for (const line of (head ?? '').split('\n')) {
    const i = line.indexOf(': ')
    header[line.slice(0, i)] = line.slice(i + 2)
  }
  return { header, frame: hex(hexPart.replace(/\s+/g, '')) }
}

export const VECTOR_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'test', 'vectors')

if (import.meta.main) {
  mkdirSync(VECTOR_DIR, { recursive: true })
  for (const f of readdirSync(VECTOR_DIR)) rmSync(join(VECTOR_DIR, f))
  const vectors = generateVectors()
  for (const [name, content] of vectors) writeFileSync(join(VECTOR_DIR, name), content)
  console.log(`wrote ${vectors.size} vectors to ${VECTOR_DIR}`)
}
