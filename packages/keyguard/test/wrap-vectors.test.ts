/**
 * The wrap-scheme vectors (capsule-core SPEC §4.4): each one is opened by the keyguard's real
 * unwrap code, which must recover the data key from the good ones and fail with `UNWRAP` on
 * the others; the keyguard's wrapping code must produce wraps of the same shape and key id.
 */
import { constants, createPrivateKey, privateDecrypt } from 'node:crypto'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DigicapError } from '@digicap/capsule-core'
import { afterAll, describe, expect, it } from 'vitest'
import {
  generateWrapVectors,
  parseWrapVector,
  renderWrapVector,
} from '../scripts/generate-wrap-vectors.ts'
import {
  deriveOwnerIdentity,
  rsaPublicKey,
  softwareSealer,
  unwrapWithRecoveryKey,
  wrapToRecoveryKey,
  wrapWithPublicKey,
} from '../src/index.ts'

const dir = new URL('./vectors/', import.meta.url).pathname
const files = readdirSync(dir).sort()
const tmp = mkdtempSync(join(tmpdir(), 'digicap-wrap-vectors-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

const fromHex = (h: string | undefined) => new Uint8Array(Buffer.from(h ?? '', 'hex'))
const quiet = { info: () => undefined, warn: () => undefined }

async function outcome(run: () => Promise<Uint8Array>): Promise<string> {
  try {
    return `ok ${Buffer.from(await run()).toString('hex')}`
  } catch (err) {
    if (!(err instanceof DigicapError)) throw err
    return `error ${err.code}`
  }
}

function expected(fields: Record<string, string>): string {
  return fields.expect === 'success' ? `ok ${fields['data key']}` : `error ${fields.error}`
}

describe('wrap-scheme vectors', () => {
  it('re-running the generator reproduces the committed files byte for byte', async () => {
    const generated = await generateWrapVectors()
    expect(generated.map((v) => `${v.name}.txt`).sort()).toEqual(files)
    for (const v of generated) {
      expect(renderWrapVector(v), v.name).toBe(readFileSync(join(dir, `${v.name}.txt`), 'utf8'))
    }
  })

  it('covers both schemes, with successes and failures', () => {
    const all = files.map((f) => parseWrapVector(readFileSync(join(dir, f), 'utf8')).fields)
    for (const scheme of ['tpm2-rsa-oaep-sha256', 'hpke-x25519-recovery']) {
      const mine = all.filter((f) => f.scheme === scheme)
      expect(mine.map((f) => f.expect).sort()).toContain('success')
      expect(mine.map((f) => f.expect).sort()).toContain('failure')
    }
  })

  for (const file of files.filter((f) => f.startsWith('rsa-'))) {
    it(`${file}: the software sealer (same RSA-OAEP as the TPM) gives the expected outcome`, async () => {
      const { fields, wrapped } = parseWrapVector(readFileSync(join(dir, file), 'utf8'))
      const key = createPrivateKey({
        key: Buffer.from(fromHex(fields['rsa private key pkcs8'])),
        format: 'der',
        type: 'pkcs8',
      })
      const keyFile = join(tmp, `${file}.pem`)
      writeFileSync(keyFile, key.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 })
      const sealer = softwareSealer({ keyFile, allowInsecure: true, logger: quiet })
      const pub = await sealer.publicKey()
      expect(pub.keyId).toBe(fields['key id'])
      expect(Buffer.from(pub.spkiDer).toString('hex')).toBe(fields['rsa public key spki'])
      const got = await outcome(() =>
        sealer.unwrap({ scheme: pub.scheme, keyId: pub.keyId, ciphertext: wrapped }),
      )
      expect(got).toBe(expected(fields))
      // The vector itself is well formed: with its own hash and label it opens.
      const own = privateDecrypt(
        {
          key,
          oaepHash: fields['oaep hash'],
          oaepLabel: Buffer.from(fromHex(fields['oaep label'])),
          padding: constants.RSA_PKCS1_OAEP_PADDING,
        },
        wrapped,
      )
      expect(own.toString('hex')).toBe(fields['data key'])
    })
  }

  for (const file of files.filter((f) => f.startsWith('hpke-'))) {
    it(`${file}: the recovery key from the words gives the expected outcome`, async () => {
      const { fields, wrapped } = parseWrapVector(readFileSync(join(dir, file), 'utf8'))
      const id = await deriveOwnerIdentity(fields.mnemonic as string, fields.passphrase)
      expect(Buffer.from(id.recoveryKeyPair.privateKey).toString('hex')).toBe(
        fields['recovery private key'],
      )
      expect(Buffer.from(id.recoveryKeyPair.publicKey).toString('hex')).toBe(
        fields['recovery public key'],
      )
      expect(id.recoveryKeyId).toBe(fields['key id'])
      const got = await outcome(() =>
        unwrapWithRecoveryKey(
          { scheme: 'hpke-x25519-recovery', keyId: id.recoveryKeyId, ciphertext: wrapped },
          id.recoveryKeyPair.privateKey,
        ),
      )
      expect(got).toBe(expected(fields))
    })
  }

  it("the keyguard's own wraps have the vectors' shape, key id and parameters", async () => {
    const vectors = files.map((f) => parseWrapVector(readFileSync(join(dir, f), 'utf8')))
    const rsa = vectors.find(
      (v) => v.fields.expect === 'success' && v.fields.scheme?.includes('rsa'),
    )
    const hpke = vectors.find(
      (v) => v.fields.expect === 'success' && v.fields.scheme?.includes('hpke'),
    )
    const dataKey = fromHex(rsa?.fields['data key'])
    const key = createPrivateKey({
      key: Buffer.from(fromHex(rsa?.fields['rsa private key pkcs8'])),
      format: 'der',
      type: 'pkcs8',
    })
    const pub = rsaPublicKey('tpm2-rsa-oaep-sha256', fromHex(rsa?.fields['rsa public key spki']))
    const wrapped = wrapWithPublicKey(pub, dataKey)
    expect(wrapped.keyId).toBe(rsa?.fields['key id'])
    expect(wrapped.ciphertext.length).toBe(rsa?.wrapped.length)
    // SHA-256 and the empty label: exactly what the vector's parameters say.
    const opened = privateDecrypt(
      {
        key,
        oaepHash: 'sha256',
        oaepLabel: Buffer.alloc(0),
        padding: constants.RSA_PKCS1_OAEP_PADDING,
      },
      wrapped.ciphertext,
    )
    expect(opened.toString('hex')).toBe(rsa?.fields['data key'])

    const recovery = await wrapToRecoveryKey(dataKey, fromHex(hpke?.fields['recovery public key']))
    expect(recovery.keyId).toBe(hpke?.fields['key id'])
    expect(recovery.ciphertext.length).toBe(hpke?.wrapped.length)
  })
})
