/**
 * The `provider.digicap` recipient with the real keyguard sealer (software RSA key) and the
 * keyguard's own wrap/unwrap functions: an image sealed to a capsule opens only with that
 * capsule's data key, obtained from the keyguard's wrapped copy; a payload for another capsule,
 * a wrong data key and an altered payload are typed errors, and the data key source is asked
 * once per capsule.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateX25519KeyPair, InvalidArgumentError, toHex } from '@digicap/capsule-core'
import {
  type Sealer,
  softwareSealer,
  unwrapDataKey,
  unwrapWithRecoveryKey,
  wrapDataKey,
} from '@digicap/keyguard'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type DataKeyRequest,
  DIGICAP_PROTOCOL,
  decryptImage,
  digicapRecipient,
  digicapUnwrapper,
  encryptImage,
  keysAnnotation,
  OciFormatError,
  OciIntegrityError,
  OciKeyError,
  openDigicapPayload,
  parseDigicapPayload,
  sealDigicapPayload,
} from '../src/index.ts'
import { blobOf, buildFixture, type Fixture, manifestOf } from './image-fixture.ts'

const silent = { info() {}, warn() {} }

describe('provider.digicap recipient', () => {
  let sealer: Sealer
  let fixture: Fixture
  let work: string
  const capsuleId = toHex(new Uint8Array(randomBytes(32)))
  const dataKey = new Uint8Array(randomBytes(32))
  const recovery = generateX25519KeyPair()
  let sealed: string
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'oci-digicap-'))
    sealer = softwareSealer({
      keyFile: join(work, 'sealer.pem'),
      allowInsecure: true,
      createIfMissing: true,
      logger: silent,
    })
    fixture = await buildFixture({ extraBytes: 50_000 })
    const wrappedKeys = await wrapDataKey(dataKey, {
      sealer,
      recoveryPublicKey: recovery.publicKey,
    })
    sealed = join(work, 'sealed')
    await encryptImage({
      from: fixture.dir,
      to: sealed,
      recipients: [digicapRecipient({ capsuleId, dataKey, wrappedKeys })],
    })
  })
  afterAll(async () => {
    await fixture.dispose()
    await rm(work, { recursive: true, force: true })
  })

  it('names the capsule and carries the keyguard’s wrapped data key on every layer', async () => {
    const { manifest } = await manifestOf(sealed, fixture.ref)
    for (const layer of manifest.layers) {
      const value = layer.annotations[keysAnnotation(DIGICAP_PROTOCOL)]
      expect(value).toBeTypeOf('string')
      expect(layer.annotations['org.opencontainers.image.enc.keys.jwe']).toBeUndefined()
      const payload = parseDigicapPayload(Buffer.from(value, 'base64'))
      expect(payload.capsuleId).toBe(capsuleId)
      expect(payload.wrappedKeys.map((w) => w.scheme)).toEqual([
        'software-rsa-oaep-sha256',
        'hpke-x25519-recovery',
      ])
      // the keyguard opens its copy, and the owner's recovery key opens the other
      expect(await unwrapDataKey(payload.wrappedKeys, sealer)).toEqual(dataKey)
      expect(await unwrapWithRecoveryKey(payload.wrappedKeys[1]!, recovery.privateKey)).toEqual(
        dataKey,
      )
    }
  })

  it('decrypts with the data key from the keyguard, asked once per capsule, to the same layers', async () => {
    const requests: DataKeyRequest[] = []
    const unwrapper = digicapUnwrapper({
      capsuleId,
      dataKey: async (request) => {
        requests.push(request)
        return unwrapDataKey(request.wrappedKeys, sealer)
      },
    })
    const plain = join(work, 'plain')
    await decryptImage({ from: sealed, to: plain, unwrappers: [unwrapper] })
    unwrapper.dispose()
    expect(requests).toHaveLength(1)
    expect(requests[0]?.capsuleId).toBe(capsuleId)
    const { manifest } = await manifestOf(plain, fixture.ref)
    expect(manifest.layers.map((l: { digest: string }) => l.digest)).toEqual(
      fixture.layers.map((l) => l.digest),
    )
    for (const layer of fixture.layers) {
      expect(Buffer.from(await blobOf(plain, layer.digest)).equals(layer.bytes)).toBe(true)
    }
  })

  it('refuses a layer sealed for another capsule before asking for any key', async () => {
    let asked = 0
    const unwrapper = digicapUnwrapper({
      capsuleId: toHex(new Uint8Array(32)),
      dataKey: async () => {
        asked++
        return dataKey
      },
    })
    const error = await decryptImage({
      from: sealed,
      to: join(work, 'other'),
      unwrappers: [unwrapper],
    }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(OciKeyError)
    expect((error as OciKeyError).details.failures).toEqual([
      { protocol: DIGICAP_PROTOCOL, code: 'OCI_KEY' },
    ])
    expect(asked).toBe(0)
  })

  it('refuses a wrong data key (a refused grant) with a typed error', async () => {
    const unwrapper = digicapUnwrapper({ dataKey: async () => new Uint8Array(32) })
    const error = await decryptImage({
      from: sealed,
      to: join(work, 'wrong'),
      unwrappers: [unwrapper],
    }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(OciKeyError)
    expect((error as OciKeyError).details.failures).toEqual([
      { protocol: DIGICAP_PROTOCOL, code: 'OCI_INTEGRITY' },
    ])
  })

  it('refuses a recipient without a 32-byte data key, a wrapped copy or a valid capsule id', () => {
    const wrappedKeys = [
      { scheme: 'software-rsa-oaep-sha256', keyId: 'k', ciphertext: new Uint8Array(256) },
    ]
    expect(() => digicapRecipient({ capsuleId, dataKey: new Uint8Array(31), wrappedKeys })).toThrow(
      InvalidArgumentError,
    )
    expect(() => digicapRecipient({ capsuleId, dataKey, wrappedKeys: [] })).toThrow(
      InvalidArgumentError,
    )
    expect(() => digicapRecipient({ capsuleId: '0x1234', dataKey, wrappedKeys })).toThrow(
      InvalidArgumentError,
    )
    expect(() =>
      digicapRecipient({ capsuleId, dataKey, wrappedKeys: [{ ...wrappedKeys[0]!, scheme: 'NO' }] }),
    ).toThrow(InvalidArgumentError)
  })

  it('detects an altered payload and refuses malformed ones', () => {
    const options = new TextEncoder().encode('{"symkey":"…"}')
    const wrappedKeys = [
      { scheme: 'software-rsa-oaep-sha256', keyId: 'k', ciphertext: new Uint8Array(256) },
    ]
    const bytes = sealDigicapPayload(options, { capsuleId, dataKey, wrappedKeys })
    const payload = parseDigicapPayload(bytes)
    expect(openDigicapPayload(payload, dataKey)).toEqual(options)
    const flipped = Uint8Array.from(payload.sealed)
    flipped[0] = (flipped[0] ?? 0) ^ 1
    expect(() => openDigicapPayload({ ...payload, sealed: flipped }, dataKey)).toThrow(
      OciIntegrityError,
    )
    // the capsule id is bound: the same ciphertext under another id does not open
    expect(() =>
      openDigicapPayload({ ...payload, capsuleId: toHex(new Uint8Array(32)) }, dataKey),
    ).toThrow(OciIntegrityError)
    const json = JSON.parse(new TextDecoder().decode(bytes))
    const enc = (o: unknown) => new TextEncoder().encode(JSON.stringify(o))
    expect(() => parseDigicapPayload(enc({ ...json, v: 2 }))).toThrow(OciFormatError)
    expect(() => parseDigicapPayload(enc({ ...json, extra: 1 }))).toThrow(OciFormatError)
    expect(() => parseDigicapPayload(enc({ ...json, capsule: '0x12' }))).toThrow(OciFormatError)
    expect(() => parseDigicapPayload(enc({ ...json, wrappedKeys: [] }))).toThrow(OciFormatError)
    expect(() =>
      parseDigicapPayload(
        enc({ ...json, wrappedKeys: [{ scheme: 'BAD SCHEME', keyId: 'k', ciphertext: 'AA==' }] }),
      ),
    ).toThrow(OciFormatError)
    expect(() => parseDigicapPayload(enc({ ...json, nonce: 'AAAA' }))).toThrow(OciFormatError)
    expect(() => parseDigicapPayload(new TextEncoder().encode('nope'))).toThrow(OciFormatError)
  })
})
