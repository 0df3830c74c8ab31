/**
 * The TypeScript MakeCredential against a real swtpm: tpm2_activatecredential recovers the
 * secret from OUR blob for the AK it was made for, and refuses it for any other AK; our file
 * has the same layout as tpm2_makecredential's, whose blob the same TPM also opens.
 */
import { createHash, randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { credentialFromSeed, kdfe } from '../src/credential/make-credential.ts'
import {
  CredentialError,
  encodeCredentialFile,
  importAttestationKey,
  makeCredential,
  TpmFormatError,
} from '../src/index.ts'
import { startQuoter, type TpmQuoter } from './helpers/tpm-quotes.ts'

let quoter: TpmQuoter
let ekPublic: Uint8Array
let rsaAkName: Uint8Array
let eccAkName: Uint8Array
let eccEkPublic: Uint8Array
let rsaAkPublic: Uint8Array
let akUnderEccEkName: Uint8Array

beforeAll(async () => {
  quoter = await startQuoter()
  ekPublic = await quoter.createEk('rsa')
  const rsaAk = await quoter.createAk('rsa', '0x81010002')
  rsaAkPublic = rsaAk
  const eccAk = await quoter.createAk('ecc', '0x81010003')
  rsaAkName = importAttestationKey({ ekPublic, akPublic: rsaAk }).name
  eccAkName = importAttestationKey({ ekPublic, akPublic: eccAk }).name
  eccEkPublic = await quoter.createEk('ecc', '0x81010005')
  const underEccEk = await quoter.createAk('ecc', '0x81010006', '0x81010005')
  akUnderEccEkName = importAttestationKey({ ekPublic: eccEkPublic, akPublic: underEccEk }).name
}, 120_000)

afterAll(async () => {
  await quoter?.stop()
})

describe('makeCredential on a real swtpm', () => {
  it('is opened by TPM2_ActivateCredential for the AK it names (RSA and ECC AKs, 1 and 32 bytes)', async () => {
    for (const [name, handle] of [
      [rsaAkName, '0x81010002'],
      [eccAkName, '0x81010003'],
    ] as const) {
      for (const size of [1, 32]) {
        const secret = new Uint8Array(randomBytes(size))
        const file = encodeCredentialFile(makeCredential({ ekPublic, objectName: name, secret }))
        expect(Buffer.from(await quoter.activateCredential(file, handle))).toEqual(
          Buffer.from(secret),
        )
      }
    }
  })

  it('is refused by the TPM for another AK (the HMAC covers the name)', async () => {
    const file = encodeCredentialFile(
      makeCredential({ ekPublic, objectName: rsaAkName, secret: new Uint8Array(randomBytes(32)) }),
    )
    await expect(quoter.activateCredential(file, '0x81010003')).rejects.toThrow(
      /activatecredential/,
    )
  })

  it('has the layout of tpm2_makecredential, whose blob the TPM opens too', async () => {
    const secret = new Uint8Array(randomBytes(32))
    const theirs = await quoter.makeCredentialWithTools(ekPublic, rsaAkName, secret)
    const ours = encodeCredentialFile(makeCredential({ ekPublic, objectName: rsaAkName, secret }))
    expect(ours.length).toBe(theirs.length)
    expect(Buffer.from(ours.subarray(0, 12))).toEqual(Buffer.from(theirs.subarray(0, 12))) // magic, version, sizes
    expect(Buffer.from(await quoter.activateCredential(theirs, '0x81010002'))).toEqual(
      Buffer.from(secret),
    )
  })

  it('a flipped bit anywhere in the id object is refused by the TPM', async () => {
    const cred = makeCredential({
      ekPublic,
      objectName: eccAkName,
      secret: new Uint8Array(32).fill(7),
    })
    for (const at of [4, 40, cred.idObject.length - 1]) {
      const idObject = cred.idObject.slice()
      idObject[at] = (idObject[at] ?? 0) ^ 1
      await expect(
        quoter.activateCredential(encodeCredentialFile({ ...cred, idObject }), '0x81010003'),
      ).rejects.toThrow(/integrity/)
    }
  })
})

describe('makeCredential to an ECC P-256 EK on a real swtpm', () => {
  it('is opened by TPM2_ActivateCredential with the ECC EK for the AK it names', async () => {
    for (const size of [1, 32]) {
      const secret = new Uint8Array(randomBytes(size))
      const file = encodeCredentialFile(
        makeCredential({ ekPublic: eccEkPublic, objectName: akUnderEccEkName, secret }),
      )
      expect(
        Buffer.from(await quoter.activateCredential(file, '0x81010006', '0x81010005')),
      ).toEqual(Buffer.from(secret))
    }
  })

  it('is refused for another AK, under the RSA EK, and with a flipped bit in the point or id object', async () => {
    const cred = makeCredential({
      ekPublic: eccEkPublic,
      objectName: akUnderEccEkName,
      secret: new Uint8Array(32).fill(9),
    })
    // the name is of the AK at 0x81010006: the RSA-EK AKs do not open it
    await expect(
      quoter.activateCredential(
        encodeCredentialFile(
          makeCredential({
            ekPublic: eccEkPublic,
            objectName: eccAkName,
            secret: new Uint8Array(4),
          }),
        ),
        '0x81010006',
        '0x81010005',
      ),
    ).rejects.toThrow(/activatecredential/)
    await expect(
      quoter.activateCredential(encodeCredentialFile(cred), '0x81010003', '0x81010001'),
    ).rejects.toThrow(/activatecredential/)
    for (const [field, at] of [
      ['encryptedSecret', 10],
      ['idObject', 40],
    ] as const) {
      const bytes = cred[field].slice()
      bytes[at] = (bytes[at] ?? 0) ^ 1
      await expect(
        quoter.activateCredential(
          encodeCredentialFile({ ...cred, [field]: bytes }),
          '0x81010006',
          '0x81010005',
        ),
      ).rejects.toThrow(/activatecredential/)
    }
  })

  it('has the layout of tpm2_makecredential for an ECC EK, whose blob the TPM opens too', async () => {
    const secret = new Uint8Array(randomBytes(32))
    const theirs = await quoter.makeCredentialWithTools(eccEkPublic, akUnderEccEkName, secret)
    const ours = encodeCredentialFile(
      makeCredential({ ekPublic: eccEkPublic, objectName: akUnderEccEkName, secret }),
    )
    expect(ours.length).toBe(theirs.length)
    expect(Buffer.from(ours.subarray(0, 12))).toEqual(Buffer.from(theirs.subarray(0, 12)))
    expect(
      Buffer.from(await quoter.activateCredential(theirs, '0x81010006', '0x81010005')),
    ).toEqual(Buffer.from(secret))
  })

  it('agrees with kdfe on a fixed input (SP 800-56A one-block case)', () => {
    const z = new Uint8Array(32).fill(1)
    const u = new Uint8Array(32).fill(2)
    const v = new Uint8Array(32).fill(3)
    const want = createHash('sha256')
      .update(Uint8Array.of(0, 0, 0, 1))
      .update(z)
      .update(Buffer.from('IDENTITY\0', 'latin1'))
      .update(u)
      .update(v)
      .digest()
    expect(Buffer.from(kdfe('sha256', z, 'IDENTITY', u, v, 256))).toEqual(want)
  })
})

describe('makeCredential arguments', () => {
  it('is deterministic from the seed except for the OAEP wrap, and fresh otherwise', () => {
    const params = { ekPublic, objectName: rsaAkName, secret: new Uint8Array(32).fill(1) }
    const seed = new Uint8Array(32).fill(2)
    expect(credentialFromSeed(params, seed).idObject).toEqual(
      credentialFromSeed(params, seed).idObject,
    )
    expect(makeCredential(params).idObject).not.toEqual(makeCredential(params).idObject)
  })

  it('refuses a too-long or empty secret, a bad name, a malformed EK, an ECC EK off its curve', () => {
    const secret = new Uint8Array(32)
    const offCurve = eccEkPublic.slice()
    offCurve[offCurve.length - 1] = (offCurve[offCurve.length - 1] ?? 0) ^ 1
    expect(() => makeCredential({ ekPublic: offCurve, objectName: rsaAkName, secret })).toThrow(
      CredentialError,
    )
    expect(() =>
      makeCredential({ ekPublic, objectName: rsaAkName, secret: new Uint8Array(33) }),
    ).toThrow(CredentialError)
    expect(() =>
      makeCredential({ ekPublic, objectName: rsaAkName, secret: new Uint8Array(0) }),
    ).toThrow(CredentialError)
    expect(() => makeCredential({ ekPublic, objectName: rsaAkName.subarray(1), secret })).toThrow(
      CredentialError,
    )
    expect(() =>
      makeCredential({ ekPublic: ekPublic.subarray(1), objectName: rsaAkName, secret }),
    ).toThrow(TpmFormatError)
  })

  it('refuses an AK public as the EK (a signing key cannot decrypt the seed)', () => {
    const err = (() => {
      try {
        makeCredential({ ekPublic: rsaAkPublic, objectName: rsaAkName, secret: new Uint8Array(1) })
      } catch (e) {
        return e
      }
    })()
    expect(err).toBeInstanceOf(CredentialError)
    expect((err as CredentialError).details.field).toBe('objectAttributes')
  })
})
