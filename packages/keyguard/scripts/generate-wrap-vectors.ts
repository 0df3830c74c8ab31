/**
 * Generates the wrap-scheme vectors in test/vectors/ (capsule-core SPEC §4.4): CCTV style,
 * `key: value` lines, a blank line, then the wrapped key in hex. Deterministic: the RSA key
 * is the fixed test key in test/fixtures, OAEP seeds and HPKE ephemeral keys are fixed, and
 * both schemes are computed here from their RFCs (RFC 8017 §7.1.1, RFC 9180 §4–5) with
 * Node's primitives only, so the keyguard's own code (wrap.ts, rsa-oaep.ts, @hpke/core) is
 * checked against an independent encoder. `test/wrap-vectors.test.ts` re-runs this and fails
 * if a file drifts.
 *
 *   node scripts/generate-wrap-vectors.ts        # rewrite test/vectors/
 */
import {
  constants,
  createCipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  publicEncrypt,
} from 'node:crypto'
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { deriveOwnerIdentity, RECOVERY_KEY_INFO } from '../src/recovery/recovery.ts'
import { RECOVERY_WRAP_AAD } from '../src/sealers/wrap.ts'

export interface WrapVector {
  name: string
  fields: Record<string, string>
  wrapped: Uint8Array
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const utf8 = (s: string) => new TextEncoder().encode(s)
const sha = (alg: string, b: Uint8Array) => new Uint8Array(createHash(alg).update(b).digest())
/** A fixed byte string from a label, for seeds and keys. */
const det = (label: string, n: number) => sha('sha512', utf8(label)).slice(0, n)

/** The 24-word BIP-39 test mnemonic of entropy 0 ("abandon" × 23, "art"). */
export const TEST_MNEMONIC = `${'abandon '.repeat(23)}art`
const DATA_KEY = det('digicap wrap vector data key', 32)
/** The fixed RSA-2048 test key (PKCS#8 PEM). A test key only: it guards nothing. */
export const TEST_RSA_PEM = readFileSync(
  new URL('../test/fixtures/wrap-test-rsa-2048.pem', import.meta.url),
)

// --- RSA-OAEP (RFC 8017 §7.1.1) with a fixed seed --------------------------------------

function mgf1(alg: string, seed: Uint8Array, length: number): Uint8Array {
  const out = new Uint8Array(length)
  for (let c = 0, off = 0; off < length; c++) {
    const block = sha(alg, Buffer.concat([seed, i2osp(c, 4)]))
    out.set(block.subarray(0, Math.min(block.length, length - off)), off)
    off += block.length
  }
  return out
}

const xor = (a: Uint8Array, b: Uint8Array) => a.map((x, i) => x ^ (b[i] as number))

/** RSAES-OAEP-ENCRYPT, hash `alg` and MGF1 of the same hash, with `label` and a given seed. */
function oaepEncrypt(alg: string, label: Uint8Array, m: Uint8Array, seedBytes: Uint8Array) {
  const k = 256
  const lHash = sha(alg, label)
  const hLen = lHash.length
  const seed = seedBytes.subarray(0, hLen)
  const db = new Uint8Array(k - hLen - 1)
  db.set(lHash, 0)
  db[db.length - m.length - 1] = 0x01
  db.set(m, db.length - m.length)
  const maskedDb = xor(db, mgf1(alg, seed, db.length))
  const maskedSeed = xor(seed, mgf1(alg, maskedDb, hLen))
  const em = Buffer.concat([new Uint8Array([0]), maskedSeed, maskedDb])
  const key = createPublicKey(createPrivateKey(TEST_RSA_PEM))
  return new Uint8Array(publicEncrypt({ key, padding: constants.RSA_NO_PADDING }, em))
}

// --- HPKE base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM (RFC 9180) ----

function i2osp(n: number, len: number): Uint8Array {
  const out = new Uint8Array(len)
  for (let i = len - 1, v = n; i >= 0; i--, v = Math.floor(v / 256)) out[i] = v & 0xff
  return out
}
const hmac = (key: Uint8Array, data: Uint8Array) =>
  new Uint8Array(createHmac('sha256', key).update(data).digest())
const KEM_ID = i2osp(0x0020, 2)
const KEM_SUITE = Buffer.concat([utf8('KEM'), KEM_ID])
const HPKE_SUITE = Buffer.concat([utf8('HPKE'), KEM_ID, i2osp(0x0001, 2), i2osp(0x0002, 2)])
const V1 = utf8('HPKE-v1')
const EMPTY = new Uint8Array(0)
const labeledExtract = (suite: Uint8Array, salt: Uint8Array, label: string, ikm: Uint8Array) =>
  hmac(salt, Buffer.concat([V1, suite, utf8(label), ikm]))
function labeledExpand(
  suite: Uint8Array,
  prk: Uint8Array,
  label: string,
  info: Uint8Array,
  length: number,
): Uint8Array {
  const labeled = Buffer.concat([i2osp(length, 2), V1, suite, utf8(label), info])
  const out: Uint8Array[] = []
  let t = EMPTY
  for (let i = 1; out.length * 32 < length; i++) {
    t = hmac(prk, Buffer.concat([t, labeled, new Uint8Array([i])]))
    out.push(t)
  }
  return new Uint8Array(Buffer.concat(out).subarray(0, length))
}

const X25519_PKCS8 = Buffer.from('302e020100300506032b656e04220420', 'hex')
const X25519_SPKI = Buffer.from('302a300506032b656e032100', 'hex')
const x25519Private = (sk: Uint8Array) =>
  createPrivateKey({ key: Buffer.concat([X25519_PKCS8, sk]), format: 'der', type: 'pkcs8' })
const x25519Public = (pk: Uint8Array) =>
  createPublicKey({ key: Buffer.concat([X25519_SPKI, pk]), format: 'der', type: 'spki' })
function rawPublic(sk: Uint8Array): Uint8Array {
  const jwk = createPublicKey(x25519Private(sk)).export({ format: 'jwk' })
  return new Uint8Array(Buffer.from(jwk.x as string, 'base64url'))
}

/** HPKE SealBase with the ephemeral private key `skE` given: returns `enc || ct`. */
function hpkeSealBase(
  pkR: Uint8Array,
  skE: Uint8Array,
  info: Uint8Array,
  aad: Uint8Array,
  pt: Uint8Array,
): Uint8Array {
  const enc = rawPublic(skE)
  const dh = new Uint8Array(
    diffieHellman({ privateKey: x25519Private(skE), publicKey: x25519Public(pkR) }),
  )
  const eaePrk = labeledExtract(KEM_SUITE, EMPTY, 'eae_prk', dh)
  const shared = labeledExpand(KEM_SUITE, eaePrk, 'shared_secret', Buffer.concat([enc, pkR]), 32)
  const context = Buffer.concat([
    new Uint8Array([0x00]),
    labeledExtract(HPKE_SUITE, EMPTY, 'psk_id_hash', EMPTY),
    labeledExtract(HPKE_SUITE, EMPTY, 'info_hash', info),
  ])
  const secret = labeledExtract(HPKE_SUITE, shared, 'secret', EMPTY)
  const key = labeledExpand(HPKE_SUITE, secret, 'key', context, 32)
  const nonce = labeledExpand(HPKE_SUITE, secret, 'base_nonce', context, 12)
  const cipher = createCipheriv('aes-256-gcm', key, nonce).setAAD(aad)
  return new Uint8Array(
    Buffer.concat([enc, cipher.update(pt), cipher.final(), cipher.getAuthTag()]),
  )
}

// --- the vectors ------------------------------------------------------------------------

/** All vectors, in a fixed order. */
export async function generateWrapVectors(): Promise<WrapVector[]> {
  const v: WrapVector[] = []
  const privateKey = createPrivateKey(TEST_RSA_PEM)
  const der = new Uint8Array(privateKey.export({ type: 'pkcs8', format: 'der' }))
  const spki = new Uint8Array(createPublicKey(privateKey).export({ type: 'spki', format: 'der' }))
  const rsa = (name: string, description: string, expect: string, alg: string, label: string) => {
    const seed = det(`oaep seed ${name}`, 32)
    v.push({
      name,
      fields: {
        description,
        scheme: 'tpm2-rsa-oaep-sha256',
        expect,
        'rsa private key pkcs8': hex(der),
        'rsa public key spki': hex(spki),
        'key id': hex(sha('sha256', spki)),
        'oaep hash': alg,
        'oaep label': hex(utf8(label)),
        'oaep seed': hex(seed.subarray(0, alg === 'sha1' ? 20 : 32)),
        'data key': hex(DATA_KEY),
      },
      wrapped: oaepEncrypt(alg, utf8(label), DATA_KEY, seed),
    })
  }
  rsa(
    'rsa-oaep-sha256',
    'the data key wrapped to the test RSA-2048 key: OAEP, SHA-256, MGF1-SHA-256, empty label',
    'success',
    'sha256',
    '',
  )
  rsa(
    'rsa-oaep-label',
    'the same with the label "digicap": the label must be empty',
    'failure',
    'sha256',
    'digicap',
  )
  rsa(
    'rsa-oaep-sha1',
    'the same with SHA-1 (the OAEP default of many libraries): the hash must be SHA-256',
    'failure',
    'sha1',
    '',
  )

  const id = await deriveOwnerIdentity(TEST_MNEMONIC)
  const hpke = async (
    name: string,
    description: string,
    expect: string,
    o: { info?: string; aad?: Uint8Array; passphrase?: string },
  ) => {
    const target =
      o.passphrase === undefined ? id : await deriveOwnerIdentity(TEST_MNEMONIC, o.passphrase)
    const skE = det(`hpke ephemeral ${name}`, 32)
    const aad = o.aad ?? RECOVERY_WRAP_AAD
    const info = utf8(o.info ?? '')
    const fields: Record<string, string> = {
      description,
      scheme: 'hpke-x25519-recovery',
      expect,
      mnemonic: TEST_MNEMONIC,
      passphrase: '',
      'recovery key derivation': `HKDF-SHA256(ikm = BIP-39 seed, no salt, info = "${RECOVERY_KEY_INFO}", 32)`,
      'recovery private key': hex(id.recoveryKeyPair.privateKey),
      'recovery public key': hex(id.recoveryKeyPair.publicKey),
      'key id': id.recoveryKeyId,
      'hpke suite': 'base mode, KEM 0x0020, KDF 0x0001, AEAD 0x0002',
      'hpke info': hex(info),
      'hpke aad': hex(aad),
      'ephemeral private key': hex(skE),
      'data key': hex(DATA_KEY),
    }
    if (o.passphrase !== undefined) {
      fields['sealed to'] = `the recovery key of the same words with passphrase "${o.passphrase}"`
    }
    v.push({
      name,
      fields,
      wrapped: hpkeSealBase(target.recoveryKeyPair.publicKey, skE, info, aad, DATA_KEY),
    })
  }
  await hpke(
    'hpke-recovery',
    'the data key wrapped to the recovery key of the test mnemonic',
    'success',
    {},
  )
  await hpke(
    'hpke-recovery-no-aad',
    'the same with an empty AAD: the AAD must be "digicap/recovery-wrap/v1"',
    'failure',
    { aad: EMPTY },
  )
  await hpke(
    'hpke-recovery-info',
    'the same with info "digicap": the info must be empty',
    'failure',
    { info: 'digicap' },
  )
  await hpke(
    'hpke-recovery-passphrase',
    'sealed to the key of the same words with passphrase "x", opened without it',
    'failure',
    { passphrase: 'x' },
  )
  for (const vec of v) {
    if (vec.fields.expect === 'failure') vec.fields.error = 'UNWRAP'
  }
  return v
}

/** Renders a vector: `key: value` lines, a blank line, the wrapped key in hex, 64 chars a line. */
export function renderWrapVector(v: WrapVector): string {
  const lines = Object.entries(v.fields).map(([k, val]) => `${k}: ${val}`)
  const body = hex(v.wrapped).match(/.{1,64}/g) ?? []
  return `${lines.join('\n')}\n\n${body.join('\n')}\n`
}

/** Parses a vector file back into its fields and wrapped bytes. */
export function parseWrapVector(text: string): {
  fields: Record<string, string>
  wrapped: Uint8Array
} {
  const [head = '', body = ''] = text.split('\n\n')
  const fields: Record<string, string> = {}
  for (const line of head.split('\n')) {
    const i = line.indexOf(': ')
    fields[line.slice(0, i)] = line.slice(i + 2)
  }
  return { fields, wrapped: new Uint8Array(Buffer.from(body.replace(/\s/g, ''), 'hex')) }
}

/** Writes all vectors to `dir`, removing stale files. */
export async function writeWrapVectors(dir: string): Promise<number> {
  mkdirSync(dir, { recursive: true })
  for (const f of readdirSync(dir)) rmSync(join(dir, f))
  const vectors = await generateWrapVectors()
  for (const vec of vectors) writeFileSync(join(dir, `${vec.name}.txt`), renderWrapVector(vec))
  return vectors.length
}

if (import.meta.main) {
  const dir = new URL('../test/vectors/', import.meta.url).pathname
  console.log(`wrote ${await writeWrapVectors(dir)} vectors to ${dir}`)
}
