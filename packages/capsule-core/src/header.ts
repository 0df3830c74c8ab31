/**
 * The capsule header: its TypeScript model, limits, and canonical CBOR encoding.
 *
 * Encoding is deterministic CBOR (RFC 8949 §4.2.1 core deterministic rules, via `cborg`
 * with `rfc8949EncodeOptions`). Parsing is strict: cborg's strict decode options, then the
 * decoded value is re-encoded and must give back the same bytes, so exactly one byte string
 * stands for each header. Unknown keys are rejected (a new field means a new format version).
 */
import { decode, encode, rfc8949EncodeOptions } from 'cborg'
import { type Address, addressToBytes, checksumAddress } from './encoding/address.ts'
import { checkBytes, equalBytes } from './encoding/bytes.ts'
import { strictCborDecodeOptions } from './encoding/cbor.ts'
import { CapsuleFormatError, CapsuleLimitError, InvalidArgumentError } from './errors.ts'
import {
  isWrapScheme,
  MAX_KEY_ID_LENGTH,
  MAX_WRAPPED_KEY_LENGTH,
  type WrappedKey,
  type WrapScheme,
} from './wrapped-key.ts'

/** Format version 1: chunks with their tags inline, a keyed plaintext commitment (SPEC.md). */
export const CAPSULE_FORMAT_VERSION = 1
/**
 * Format version 2: the tags in one table before the bodies, each body a whole IPFS leaf, and
 * a commitment over the ciphertext (SPEC.md §11), so a file seal hashes every byte once.
 */
export const CAPSULE_FORMAT_VERSION_2 = 2
/** The format versions this library reads and writes. */
export const CAPSULE_FORMAT_VERSIONS: readonly number[] = [1, 2]
/** Version 2's one chunk size: one body is one 1 MiB IPFS leaf (SPEC.md §11.1). */
export const V2_CHUNK_SIZE = 1024 * 1024
/** Version 2: most tag-table bytes a reader holds (16 per chunk: 1 TiB of payload). */
export const V2_MAX_TAG_TABLE_LENGTH = 16 * 1024 * 1024
/** Version 2: capsules of this many chunks or more put their bodies on 1 MiB file offsets. */
export const V2_ALIGN_MIN_CHUNKS = 64
/** Version 2: the alignment of the bodies of an aligned capsule (the IPFS leaf size). */
export const V2_BODY_ALIGNMENT = 1024 * 1024
/** ASCII "DIGICAP" followed by the version byte. */
export const CAPSULE_MAGIC = new Uint8Array([0x44, 0x49, 0x47, 0x49, 0x43, 0x41, 0x50])
/** Magic (7) + version (1) + header length (u32 BE, 4). */
export const CAPSULE_PREAMBLE_LENGTH = 12
/** Owner signature, `r || s || v` with v in {27, 28}. */
export const CAPSULE_SIGNATURE_LENGTH = 65
/** Hard limit on the CBOR header length. */
export const MAX_HEADER_LENGTH = 64 * 1024
/** AES-GCM tag length appended to each chunk. */
export const CHUNK_TAG_LENGTH = 16
/** Smallest allowed chunk size (a power of two). */
export const MIN_CHUNK_SIZE = 64
/** Largest allowed chunk size (a power of two). */
export const MAX_CHUNK_SIZE = 16 * 1024 * 1024
/** Default chunk size, chosen from `bench/seal-open.ts` (see SPEC.md §6). */
export const DEFAULT_CHUNK_SIZE = 1024 * 1024
/** Cipher suite 1: HKDF-SHA256 key derivation, AES-256-GCM STREAM chunks. */
export const CIPHER_SUITE_AES_256_GCM_STREAM = 1
/** Most receivers one header may list. */
export const MAX_RECEIVERS = 32
/** Most wrapped keys one header may carry. */
export const MAX_WRAPPED_KEYS = 8
/** Longest string field (peer ids, entry), in UTF-8 bytes. */
export const MAX_STRING_LENGTH = 256

/**
 * What the executor must provide to run the capsule. `oci`: an image capsule (@digicap/oci),
 * whose `entry` is the image's manifest digest (`sha256:<64 hex>`), its commitment.
 */
export type RuntimeKind = 'data' | 'quickjs' | 'wasi' | 'oci'

/** Where the unlock rule lives on chain. */
export interface PolicyReference {
  /** EIP-155 chain id. */
  chainId: number
  /** Capsule registry contract (also the EIP-712 `verifyingContract`). */
  registry: Address
  /** Policy contract that decides access. */
  policy: Address
}

/** Which keyguard holds the data key, and how it is wrapped there. */
export interface KeyguardReference {
  /** libp2p peer id of the keyguard (base58btc or CID string form). */
  peerId: string
  /** Key id inside that keyguard. */
  keyId: string
  /** Wrap scheme of the keyguard's copy of the data key. */
  wrapScheme: WrapScheme
}

/** Describes the encrypted payload. */
export interface PayloadDescriptor {
  /** Cipher suite id; only {@link CIPHER_SUITE_AES_256_GCM_STREAM} exists. */
  cipherSuite: number
  /** Plaintext bytes per chunk (power of two, {@link MIN_CHUNK_SIZE}..{@link MAX_CHUNK_SIZE}). */
  chunkSize: number
  /** Exact plaintext length in bytes. */
  plaintextSize: number
  /**
   * The header's commitment to the payload. Version 1: HMAC-SHA256 over the plaintext's
   * chunk digests under a key derived from the data key (SPEC.md §4.3, CBOR key
   * `plaintextCommitment`). Version 2: SHA-256 over the ciphertext bodies' digests, unkeyed
   * (SPEC.md §11.3, CBOR key `payloadCommitment`).
   */
  contentCommitment: Uint8Array
  /** HKDF output that commits to the data key; a wrong key is caught before any chunk. */
  keyCommitment: Uint8Array
}

/** Sandbox requirements. `quickjs`, `wasi` and `oci` need an `entry`. */
export interface RuntimeRequirements {
  kind: RuntimeKind
  /** Entry point (function or export name, or path inside the payload). */
  entry?: string
  /** Memory limit in bytes. */
  memoryLimit?: number
  /** Wall-clock limit in milliseconds. */
  timeLimit?: number
}

/** Someone who may receive run results, encrypted to `publicKey` with HPKE. */
export interface Receiver {
  /** X25519 public key, 32 bytes. */
  publicKey: Uint8Array
  /** libp2p peer id to deliver to, if known. */
  peerId?: string
}

/** A decoded, validated capsule header. */
export interface CapsuleHeader {
  version: number
  /** 32 random bytes. */
  capsuleId: Uint8Array
  /** Ethereum address of the owner who signs the header. */
  owner: Address
  /** Unix time in seconds. */
  createdAt: number
  policy: PolicyReference
  keyguard: KeyguardReference
  payload: PayloadDescriptor
  runtime: RuntimeRequirements
  receivers: Receiver[]
  /** Copies of the data key wrapped to keys only their holders can use. */
  wrappedKeys: WrappedKey[]
}

const RUNTIME_KINDS: readonly string[] = ['data', 'quickjs', 'wasi', 'oci']
const MANIFEST_DIGEST_RE = /^sha256:[0-9a-f]{64}$/

type Fail = (message: string, details?: Record<string, unknown>, limit?: boolean) => never

const argFail: Fail = (message, details) => {
  throw new InvalidArgumentError(`header: ${message}`, { details })
}
const formatFail: Fail = (message, details, limit) => {
  if (limit) throw new CapsuleLimitError(`capsule header: ${message}`, { details })
  throw new CapsuleFormatError(`capsule header: ${message}`, { details })
}

type CborMap = Record<string, unknown>

function isMap(v: unknown): v is CborMap {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array)
}

function checkKeys(path: string, m: CborMap, required: string[], optional: string[], fail: Fail) {
  for (const k of required)
    if (!(k in m)) fail(`missing field ${path}.${k}`, { field: `${path}.${k}` })
  for (const k of Object.keys(m)) {
    if (!required.includes(k) && !optional.includes(k)) {
      fail(`unknown field ${path}.${k}`, { field: `${path}.${k}` })
    }
  }
}

function uint(path: string, v: unknown, fail: Fail, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    fail(`${path} must be an unsigned integer`, { field: path })
  }
  if (v > max) fail(`${path} is over its limit`, { field: path, max }, true)
  return v
}

function bytes(path: string, v: unknown, fail: Fail, length?: number): Uint8Array {
  if (!(v instanceof Uint8Array)) fail(`${path} must be a byte string`, { field: path })
  if (length !== undefined && v.length !== length) {
    fail(`${path} must be ${length} bytes`, { field: path, length: v.length })
  }
  return v
}

function str(path: string, v: unknown, fail: Fail, maxBytes = MAX_STRING_LENGTH): string {
  if (typeof v !== 'string' || v.length === 0)
    fail(`${path} must be a non-empty string`, { field: path })
  if (Buffer.byteLength(v) > maxBytes)
    fail(`${path} is longer than ${maxBytes} bytes`, { field: path }, true)
  return v
}

function map(path: string, v: unknown, fail: Fail): CborMap {
  if (!isMap(v)) fail(`${path} must be a map`, { field: path })
  return v
}

function array(path: string, v: unknown, fail: Fail, max: number): unknown[] {
  if (!Array.isArray(v)) fail(`${path} must be an array`, { field: path })
  if (v.length > max) fail(`${path} has more than ${max} entries`, { field: path, max }, true)
  return v
}

/**
 * Validates the CBOR-level header value (addresses as 20-byte strings) and returns the
 * TypeScript model. One function serves both directions so the writer can never produce
 * something the reader rejects.
 */
function fromCbor(raw: unknown, fail: Fail, preambleVersion?: number): CapsuleHeader {
  const m = map('header', raw, fail)
  // The preamble's version byte chooses the rules (SPEC.md §2): a header that says another
  // version is refused before any rule of its own version is applied.
  if (preambleVersion !== undefined && m.version !== preambleVersion) {
    fail('header.version does not match the preamble', {
      version: m.version,
      preamble: preambleVersion,
    })
  }
  checkKeys(
    'header',
    m,
    [
      'version',
      'capsuleId',
      'owner',
      'createdAt',
      'policy',
      'keyguard',
      'payload',
      'runtime',
      'receivers',
      'wrappedKeys',
    ],
    [],
    fail,
  )
  const version = uint('header.version', m.version, fail)
  if (!CAPSULE_FORMAT_VERSIONS.includes(version))
    fail('header.version does not match the preamble', { version })
  const commitmentKey = version === 1 ? 'plaintextCommitment' : 'payloadCommitment'

  const p = map('header.policy', m.policy, fail)
  checkKeys('header.policy', p, ['chainId', 'registry', 'policy'], [], fail)
  const chainId = uint('header.policy.chainId', p.chainId, fail)
  if (chainId === 0)
    fail('header.policy.chainId must be positive', { field: 'header.policy.chainId' })

  const k = map('header.keyguard', m.keyguard, fail)
  checkKeys('header.keyguard', k, ['peerId', 'keyId', 'wrapScheme'], [], fail)
  const wrapScheme = str('header.keyguard.wrapScheme', k.wrapScheme, fail, 64)
  if (!isWrapScheme(wrapScheme)) fail('header.keyguard.wrapScheme is not a valid scheme name')

  const pl = map('header.payload', m.payload, fail)
  checkKeys(
    'header.payload',
    pl,
    ['cipherSuite', 'chunkSize', 'plaintextSize', commitmentKey, 'keyCommitment'],
    [],
    fail,
  )
  const cipherSuite = uint('header.payload.cipherSuite', pl.cipherSuite, fail)
  if (cipherSuite !== CIPHER_SUITE_AES_256_GCM_STREAM) {
    fail('header.payload.cipherSuite is unknown', { cipherSuite })
  }
  const chunkSize = uint('header.payload.chunkSize', pl.chunkSize, fail)
  if (chunkSize > MAX_CHUNK_SIZE) {
    fail('header.payload.chunkSize is over the limit', { chunkSize, max: MAX_CHUNK_SIZE }, true)
  }
  if (chunkSize < MIN_CHUNK_SIZE || (chunkSize & (chunkSize - 1)) !== 0) {
    fail('header.payload.chunkSize must be a power of two >= 64', { chunkSize })
  }
  if (version === 2 && chunkSize !== V2_CHUNK_SIZE) {
    fail('header.payload.chunkSize must be 1 MiB in format version 2', { chunkSize })
  }
  const plaintextSize = uint('header.payload.plaintextSize', pl.plaintextSize, fail)
  if (version === 2 && 16 * Math.ceil(plaintextSize / chunkSize) > V2_MAX_TAG_TABLE_LENGTH) {
    fail(
      'header.payload.plaintextSize is over the limit of format version 2',
      { plaintextSize, maxTagTableLength: V2_MAX_TAG_TABLE_LENGTH },
      true,
    )
  }

  const r = map('header.runtime', m.runtime, fail)
  checkKeys('header.runtime', r, ['kind'], ['entry', 'memoryLimit', 'timeLimit'], fail)
  const kind = str('header.runtime.kind', r.kind, fail, 16)
  if (!RUNTIME_KINDS.includes(kind)) fail('header.runtime.kind is unknown', { kind })
  const runtime: RuntimeRequirements = { kind: kind as RuntimeKind }
  if (r.entry !== undefined) runtime.entry = str('header.runtime.entry', r.entry, fail)
  else if (kind !== 'data') fail(`header.runtime.entry is required for kind ${kind}`)
  if (kind === 'oci' && !MANIFEST_DIGEST_RE.test(runtime.entry ?? '')) {
    fail('header.runtime.entry of kind oci must be the manifest digest sha256:<64 hex>')
  }
  if (r.memoryLimit !== undefined)
    runtime.memoryLimit = uint('header.runtime.memoryLimit', r.memoryLimit, fail)
  if (r.timeLimit !== undefined)
    runtime.timeLimit = uint('header.runtime.timeLimit', r.timeLimit, fail)

  const receivers = array('header.receivers', m.receivers, fail, MAX_RECEIVERS).map((v, i) => {
    const path = `header.receivers[${i}]`
    const rm = map(path, v, fail)
    checkKeys(path, rm, ['publicKey'], ['peerId'], fail)
    const out: Receiver = { publicKey: bytes(`${path}.publicKey`, rm.publicKey, fail, 32) }
    if (rm.peerId !== undefined) out.peerId = str(`${path}.peerId`, rm.peerId, fail)
    return out
  })

  const wrappedKeys = array('header.wrappedKeys', m.wrappedKeys, fail, MAX_WRAPPED_KEYS).map(
    (v, i) => {
      const path = `header.wrappedKeys[${i}]`
      const wm = map(path, v, fail)
      checkKeys(path, wm, ['scheme', 'keyId', 'ciphertext'], [], fail)
      const scheme = str(`${path}.scheme`, wm.scheme, fail, 64)
      if (!isWrapScheme(scheme)) fail(`${path}.scheme is not a valid scheme name`)
      const ciphertext = bytes(`${path}.ciphertext`, wm.ciphertext, fail)
      if (ciphertext.length === 0) fail(`${path}.ciphertext is empty`)
      if (ciphertext.length > MAX_WRAPPED_KEY_LENGTH) {
        fail(`${path}.ciphertext is over the limit`, { length: ciphertext.length }, true)
      }
      return { scheme, keyId: str(`${path}.keyId`, wm.keyId, fail, MAX_KEY_ID_LENGTH), ciphertext }
    },
  )

  return {
    version,
    capsuleId: bytes('header.capsuleId', m.capsuleId, fail, 32),
    owner: checksumAddress(bytes('header.owner', m.owner, fail, 20)),
    createdAt: uint('header.createdAt', m.createdAt, fail),
    policy: {
      chainId,
      registry: checksumAddress(bytes('header.policy.registry', p.registry, fail, 20)),
      policy: checksumAddress(bytes('header.policy.policy', p.policy, fail, 20)),
    },
    keyguard: {
      peerId: str('header.keyguard.peerId', k.peerId, fail),
      keyId: str('header.keyguard.keyId', k.keyId, fail, MAX_KEY_ID_LENGTH),
      wrapScheme,
    },
    payload: {
      cipherSuite,
      chunkSize,
      plaintextSize,
      contentCommitment: bytes(`header.payload.${commitmentKey}`, pl[commitmentKey], fail, 32),
      keyCommitment: bytes('header.payload.keyCommitment', pl.keyCommitment, fail, 32),
    },
    runtime,
    receivers,
    wrappedKeys,
  }
}

function toCbor(h: CapsuleHeader): CborMap {
  if (typeof h !== 'object' || h === null) argFail('must be an object')
  const obj = (name: string, v: unknown): CborMap => {
    if (typeof v !== 'object' || v === null) argFail(`${name} must be an object`)
    return v as CborMap
  }
  const policy = obj('policy', h.policy)
  const keyguard = obj('keyguard', h.keyguard)
  const payload = obj('payload', h.payload)
  const runtime = obj('runtime', h.runtime)
  const rt: CborMap = { kind: runtime.kind }
  if (runtime.entry !== undefined) rt.entry = runtime.entry
  if (runtime.memoryLimit !== undefined) rt.memoryLimit = runtime.memoryLimit
  if (runtime.timeLimit !== undefined) rt.timeLimit = runtime.timeLimit
  if (!Array.isArray(h.receivers)) argFail('receivers must be an array')
  if (!Array.isArray(h.wrappedKeys)) argFail('wrappedKeys must be an array')
  return {
    version: h.version,
    capsuleId: h.capsuleId,
    owner: addressToBytes(h.owner, 'header.owner'),
    createdAt: h.createdAt,
    policy: {
      chainId: policy.chainId,
      registry: addressToBytes(policy.registry as string, 'header.policy.registry'),
      policy: addressToBytes(policy.policy as string, 'header.policy.policy'),
    },
    keyguard: { peerId: keyguard.peerId, keyId: keyguard.keyId, wrapScheme: keyguard.wrapScheme },
    payload: {
      cipherSuite: payload.cipherSuite,
      chunkSize: payload.chunkSize,
      plaintextSize: payload.plaintextSize,
      [h.version === 1 ? 'plaintextCommitment' : 'payloadCommitment']: payload.contentCommitment,
      keyCommitment: payload.keyCommitment,
    },
    runtime: rt,
    receivers: h.receivers.map((r) => {
      const o = obj('receiver', r)
      const out: CborMap = { publicKey: o.publicKey }
      if (o.peerId !== undefined) out.peerId = o.peerId
      return out
    }),
    wrappedKeys: h.wrappedKeys.map((w) => {
      const o = obj('wrappedKey', w)
      return { scheme: o.scheme, keyId: o.keyId, ciphertext: o.ciphertext }
    }),
  }
}

/**
 * Encodes a header to its canonical CBOR bytes.
 *
 * @throws {InvalidArgumentError} if a field is missing, of the wrong type, or over a limit.
 */
export function encodeCapsuleHeader(header: CapsuleHeader): Uint8Array {
  const cbor = toCbor(header)
  fromCbor(cbor, argFail)
  const out = encode(cbor, rfc8949EncodeOptions)
  if (out.length > MAX_HEADER_LENGTH) {
    argFail('encodes to more than the header length limit', {
      length: out.length,
      max: MAX_HEADER_LENGTH,
    })
  }
  return out
}

/**
 * Decodes and validates canonical CBOR header bytes. `preambleVersion`, the capsule's version
 * byte: a header whose `version` differs is refused before any rule of its own version applies.
 *
 * @throws {CapsuleFormatError} for malformed or non-canonical CBOR, unknown or missing fields.
 * @throws {CapsuleLimitError} for a field over its limit.
 */
export function decodeCapsuleHeader(bytes: Uint8Array, preambleVersion?: number): CapsuleHeader {
  checkBytes('bytes', bytes)
  let raw: unknown
  try {
    raw = decode(bytes, strictCborDecodeOptions())
  } catch (cause) {
    throw new CapsuleFormatError('capsule header is not valid strict CBOR', {
      cause,
      details: { length: bytes.length },
    })
  }
  const header = fromCbor(raw, formatFail, preambleVersion)
  let again: Uint8Array
  try {
    again = encode(raw, rfc8949EncodeOptions)
  } catch (cause) {
    throw new CapsuleFormatError('capsule header cannot be re-encoded', { cause })
  }
  if (!equalBytes(again, bytes)) {
    throw new CapsuleFormatError('capsule header is not in canonical CBOR form', {
      details: { length: bytes.length, canonicalLength: again.length },
      hint: 'Encode maps with bytewise-sorted keys and integers in their shortest form (RFC 8949 §4.2.1).',
    })
  }
  return header
}
