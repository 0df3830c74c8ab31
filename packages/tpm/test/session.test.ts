/**
 * Salted sessions with parameter encryption against a real swtpm (the oracle for KDFa, the
 * session key, the HMACs and AES-CFB): a round trip of TPM2_RSA_Decrypt whose answer never
 * crosses the wire in clear, a substituted key refused before anything is sent, and an
 * altered response refused on its HMAC.
 */
import { constants, publicEncrypt, randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  pcrRead,
  pcrReadInSession,
  plainCommand,
  type RsaKeyPublic,
  readPinnedPublic,
  readRsaPublic,
  rsaPublicKeyObject,
  runSessionCommand,
  runTpm2Tool,
  type Send,
  startSaltedSession,
  TPM_CC,
  TpmSessionError,
  type TpmTransport,
  TpmWriter,
  transportFor,
  withChannel,
} from '../src/index.ts'
import { type Swtpm, startSwtpm } from '../src/testing.ts'

const HANDLE = 0x81000020

let tpm: Swtpm
let transport: TpmTransport
let pub: RsaKeyPublic

async function provision(handle: number): Promise<void> {
  const tools = { tcti: tpm.tcti, timeoutMs: 20_000 }
  const dir = tpm.stateDir
  await runTpm2Tool(
    tools,
    'tpm2_createprimary',
    [
      '-C',
      'o',
      '-g',
      'sha256',
      '-G',
      'rsa2048:oaep-sha256:null',
      '-a',
      'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|decrypt',
      '-u',
      '-',
      '-c',
      `${dir}/k.ctx`,
      '-Q',
    ],
    { input: randomBytes(32) },
  )
  await runTpm2Tool(tools, 'tpm2_evictcontrol', [
    '-C',
    'o',
    '-c',
    `${dir}/k.ctx`,
    `0x${handle.toString(16)}`,
    '-Q',
  ])
  await runTpm2Tool(tools, 'tpm2_flushcontext', ['-t'])
}

function oaep(key: RsaKeyPublic, data: Uint8Array): Uint8Array {
  return publicEncrypt(
    { key: rsaPublicKeyObject(key), padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
    data,
  )
}

function decryptParameters(ciphertext: Uint8Array): Uint8Array {
  return new TpmWriter().sized(ciphertext).u16(0x17).u16(0x0b).u16(0).bytes()
}

/** A transport that keeps a copy of every byte sent and received, channels included. */
function recording(inner: TpmTransport, wire: Uint8Array[]): TpmTransport {
  const record =
    (send: Send): Send =>
    async (command) => {
      wire.push(command.slice())
      const response = await send(command)
      wire.push(response.slice())
      return response
    }
  return {
    kind: inner.kind,
    target: inner.target,
    send: record((c) => inner.send(c)),
    async open() {
      const channel = await inner.open!()
      return { send: record((c) => channel.send(c)), close: () => channel.close() }
    },
  }
}

function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(haystack).indexOf(Buffer.from(needle)) >= 0
}

async function sessionDecrypt(t: TpmTransport, key: RsaKeyPublic, ciphertext: Uint8Array) {
  return withChannel(t, async (send) => {
    const session = await startSaltedSession(send, { handle: HANDLE, public: key })
    const { parameters } = await runSessionCommand(send, session, {
      name: 'TPM2_RSA_Decrypt',
      code: TPM_CC.RSA_Decrypt,
      handles: [{ handle: HANDLE, name: key.name }],
      parameters: decryptParameters(ciphertext),
      encryptResponse: true,
    })
    return parameters.slice(2)
  })
}

beforeAll(async () => {
  tpm = await startSwtpm()
  transport = transportFor(tpm.tcti, 20_000)!
  await provision(HANDLE)
  pub = await withChannel(transport, (send) => readRsaPublic(send, HANDLE))
})

afterAll(async () => {
  await tpm?.stop()
})

describe('salted session with parameter encryption (swtpm)', () => {
  it('decrypts in the TPM and the plaintext never crosses the wire in clear', async () => {
    const secret = new Uint8Array(randomBytes(32))
    const wire: Uint8Array[] = []
    const plain = await sessionDecrypt(recording(transport, wire), pub, oaep(pub, secret))
    expect(Buffer.from(plain).equals(Buffer.from(secret))).toBe(true)
    expect(wire.length).toBeGreaterThanOrEqual(4) // StartAuthSession + RSA_Decrypt (+ retries)
    expect(wire.some((b) => contains(b, secret))).toBe(false)
  })

  it('the recorder sees the plaintext of an unencrypted TPM2_RSA_Decrypt (control)', async () => {
    const secret = new Uint8Array(randomBytes(32))
    const wire: Uint8Array[] = []
    const auth = new TpmWriter().u32(0x40000009).u16(0).u8(1).u16(0).bytes()
    const body = new TpmWriter()
      .u32(HANDLE)
      .u32(auth.length)
      .raw(auth)
      .raw(decryptParameters(oaep(pub, secret)))
      .bytes()
    const command = new TpmWriter()
      .u16(0x8002)
      .u32(10 + body.length)
      .u32(TPM_CC.RSA_Decrypt)
      .raw(body)
      .bytes()
    await recording(transport, wire).send(command)
    expect(wire.some((b) => contains(b, secret))).toBe(true)
  })

  it('keeps a session across commands (nonces roll) on one channel', async () => {
    await withChannel(transport, async (send) => {
      const session = await startSaltedSession(send, { handle: HANDLE, public: pub })
      for (let i = 0; i < 3; i++) {
        const secret = new Uint8Array(randomBytes(32))
        const { parameters } = await runSessionCommand(send, session, {
          name: 'TPM2_RSA_Decrypt',
          code: TPM_CC.RSA_Decrypt,
          handles: [{ handle: HANDLE, name: pub.name }],
          parameters: decryptParameters(oaep(pub, secret)),
          encryptResponse: true,
          encryptCommand: true,
          continueSession: i < 2,
        })
        expect(Buffer.from(parameters.slice(2)).equals(Buffer.from(secret))).toBe(true)
      }
    })
  })

  it('refuses an altered response on its HMAC, before decrypting anything', async () => {
    const secret = new Uint8Array(randomBytes(32))
    let n = 0
    const tampering: TpmTransport = {
      kind: transport.kind,
      target: transport.target,
      send: (c) => transport.send(c),
      async open() {
        const channel = await transport.open!()
        return {
          close: () => channel.close(),
          async send(c) {
            const r = await channel.send(c)
            if (++n === 2) r[20] = (r[20] ?? 0) ^ 1
            return r
          },
        }
      },
    }
    const err = await sessionDecrypt(tampering, pub, oaep(pub, secret)).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(TpmSessionError)
    expect((err as TpmSessionError).details.reason).toBe('response-hmac')
  })

  it('PCR_Read in an audit session: the values of a plain read, a swapped value refused (ADR 0089)', async () => {
    const pcrs = [0, 7, 16]
    const plain = await withChannel(transport, (send) => pcrRead(send, pcrs))
    const checked = await withChannel(transport, (send) =>
      pcrReadInSession(send, { handle: HANDLE, public: pub }, pcrs),
    )
    expect(checked).toEqual(plain)
    // A man in the middle rewrites PCR 16's value (the answer's last digest) in every PCR_Read.
    const swapping: TpmTransport = {
      kind: transport.kind,
      target: transport.target,
      send: (c) => transport.send(c),
      async open() {
        const channel = await transport.open!()
        return {
          close: () => channel.close(),
          async send(c) {
            const r = await channel.send(c)
            const at = Buffer.from(r).indexOf(Buffer.from(plain.get(16)!))
            if (new DataView(c.buffer, c.byteOffset).getUint32(6) === TPM_CC.PCR_Read && at > 0)
              r.set(randomBytes(32), at)
            return r
          },
        }
      },
    }
    const swapped = await withChannel(swapping, (send) => pcrRead(send, [16]))
    expect(swapped.get(16)).not.toEqual(plain.get(16))
    const err = await withChannel(swapping, (send) =>
      pcrReadInSession(send, { handle: HANDLE, public: pub }, [16]),
    ).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(TpmSessionError)
    expect((err as TpmSessionError).details).toMatchObject({
      reason: 'response-hmac',
      command: 'TPM2_PCR_Read',
    })
  })

  it('a substituted key: its name differs from the pinned one, and the salt does not decrypt', async () => {
    const other = 0x81000021
    await provision(other)
    // The TPM answers for `other` as if it were at HANDLE: the pinned name catches it…
    const err = await withChannel(transport, (send) =>
      readPinnedPublic(send, other, pub.name),
    ).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(TpmSessionError)
    expect((err as TpmSessionError).details.reason).toBe('key-substituted')
    // …and a salt encrypted to the pinned key cannot be opened by the substitute.
    const salt = await withChannel(transport, (send) =>
      startSaltedSession(send, { handle: other, public: pub }),
    ).catch((e: unknown) => e)
    expect(salt).toBeInstanceOf(TpmSessionError)
    expect((salt as TpmSessionError).details.reason).toBe('salt-refused')
    // The TPM's code, decoded: which command, which base code, on which parameter.
    expect((salt as TpmSessionError).details).toMatchObject({
      command: 'TPM2_StartAuthSession',
      rc: expect.stringMatching(/^0x/),
      base: expect.stringMatching(/^0x/),
    })
    // A no-session command still works on the same TPM (nothing wedged).
    const r = await transport.send(plainCommand(TPM_CC.ReadPublic, [HANDLE], new Uint8Array(0)))
    expect(new DataView(r.buffer).getUint32(6)).toBe(0)
  })
})
