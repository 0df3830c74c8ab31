/**
 * The EK and credential activation against a real swtpm manufactured with an EK certificate
 * (ADR 0097), each command cross-checked with tpm2-tools: the certificate read from NV is the
 * one `tpm2_nvread` returns; the EK recreated from the template is the one `tpm2_createek`
 * makes; a credential made by `tpm2_makecredential --tcti none` for a key's name is activated
 * by our `TPM2_ActivateCredential`, and refused for another name.
 */
import { createHash, randomBytes, X509Certificate } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  activateCredential,
  createEkPrimary,
  EK_AUTH_POLICY,
  EK_RSA_CERTIFICATE_INDEX,
  ekRsaPublicArea,
  flushContext,
  parseRsaPublic,
  plainCommand,
  plainResponse,
  type RsaKeyPublic,
  readEkCertificateNv,
  readRsaPublic,
  runTpm2Tool,
  TPM_CC,
  TPM_RH_ENDORSEMENT,
  TPM_RH_NULL,
  TpmCommandError,
  type TpmTransport,
  TpmWriter,
  transportFor,
  withChannel,
} from '../src/index.ts'
import { type Swtpm, startSwtpm } from '../src/testing.ts'

const KEY = 0x81000031
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

let tpm: Swtpm
let transport: TpmTransport
let key: RsaKeyPublic
const tools = () => ({ tcti: tpm.tcti, timeoutMs: 20_000 })

beforeAll(async () => {
  tpm = await startSwtpm({ ekCertificate: true })
  transport = transportFor(tpm.tcti, 20_000)!
  const ctx = join(tpm.stateDir, 'k.ctx')
  await runTpm2Tool(
    tools(),
    'tpm2_createprimary',
    [
      ...['-C', 'o', '-g', 'sha256', '-G', 'rsa2048:oaep-sha256:null'],
      ...['-a', 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|decrypt'],
      ...['-u', '-', '-c', ctx, '-Q'],
    ],
    { input: randomBytes(32) },
  )
  await runTpm2Tool(tools(), 'tpm2_evictcontrol', ['-C', 'o', '-c', ctx, `0x${KEY.toString(16)}`])
  await runTpm2Tool(tools(), 'tpm2_flushcontext', ['-t'])
  key = await withChannel(transport, (s) => readRsaPublic(s, KEY))
}, 60_000)

afterAll(async () => {
  await tpm?.stop()
})

/** A credential file of tpm2_makecredential: 8-byte header ‖ TPM2B_ID_OBJECT ‖ TPM2B_ENCRYPTED_SECRET. */
async function makeCredentialWithTools(ekPub: string, name: Uint8Array, secret: Uint8Array) {
  const secretFile = join(tpm.stateDir, 'secret.bin')
  const out = join(tpm.stateDir, 'cred.out')
  await writeFile(secretFile, secret)
  await runTpm2Tool({ tcti: 'none', timeoutMs: 20_000 }, 'tpm2_makecredential', [
    ...['--tcti', 'none', '-u', ekPub, '-s', secretFile, '-n', hex(name), '-o', out],
  ])
  const file = new Uint8Array(await readFile(out))
  const view = new DataView(file.buffer, file.byteOffset)
  const idLength = 2 + view.getUint16(8)
  return {
    credentialBlob: file.subarray(8, 8 + idLength),
    secret: file.subarray(8 + idLength),
  }
}

describe('EK and credential activation (swtpm with an EK certificate)', () => {
  it('reads the EK certificate from NV as tpm2_nvread does, and it certifies the EK', async () => {
    const cert = await withChannel(transport, (s) => readEkCertificateNv(s))
    expect(cert).toBeDefined()
    const out = join(tpm.stateDir, 'ekcert.der')
    await runTpm2Tool(tools(), 'tpm2_nvread', [
      ...['-C', 'o', '-o', out, `0x${EK_RSA_CERTIFICATE_INDEX.toString(16)}`],
    ])
    const viaTools = new Uint8Array(await readFile(out))
    expect(hex(viaTools.subarray(0, cert!.length))).toBe(hex(cert!))
    const x509 = new X509Certificate(cert!)
    const ek = await withChannel(transport, async (s) => {
      const created = await createEkPrimary(s)
      await flushContext(s, created.handle)
      return created.public
    })
    const jwk = x509.publicKey.export({ format: 'jwk' })
    expect(Buffer.from(jwk.n!, 'base64url').toString('hex')).toBe(hex(ek.modulus))
  })

  it('recreates the EK of the TCG template: the same public area as tpm2_createek', async () => {
    // PolicySecret(TPM_RH_ENDORSEMENT) with an empty policyRef, computed here.
    const cc = Buffer.from('00000151', 'hex')
    const rh = Buffer.alloc(4)
    rh.writeUInt32BE(TPM_RH_ENDORSEMENT)
    const step = createHash('sha256').update(Buffer.alloc(32)).update(cc).update(rh).digest()
    expect(hex(EK_AUTH_POLICY)).toBe(createHash('sha256').update(step).digest('hex'))

    const ekPub = join(tpm.stateDir, 'ek.pub')
    const ctx = join(tpm.stateDir, 'ek.ctx')
    await runTpm2Tool(tools(), 'tpm2_createek', ['-c', ctx, '-G', 'rsa', '-u', ekPub])
    await runTpm2Tool(tools(), 'tpm2_flushcontext', ['-t'])
    const viaTools = new Uint8Array(await readFile(ekPub)).subarray(2)
    const ours = await withChannel(transport, async (s) => {
      const created = await createEkPrimary(s)
      await flushContext(s, created.handle)
      return created.public
    })
    expect(hex(ours.publicArea)).toBe(hex(viaTools))
    expect(hex(ekRsaPublicArea(ours.modulus))).toBe(hex(viaTools))
    expect(hex(parseRsaPublic(viaTools).name)).toBe(hex(ours.name))
  })

  it('activates a tpm2_makecredential credential for the key, refuses one for another name', async () => {
    const ekPub = join(tpm.stateDir, 'ek.pub')
    const secret = new Uint8Array(randomBytes(32))
    const forKey = await makeCredentialWithTools(ekPub, key.name, secret)
    const other = new Uint8Array(key.name)
    other[33] = (other[33] as number) ^ 1
    const forOther = await makeCredentialWithTools(ekPub, other, secret)
    const [got, refused] = await withChannel(transport, async (s) => {
      const ek = await createEkPrimary(s)
      try {
        const ok = await activateCredential(s, {
          activateHandle: KEY,
          ekHandle: ek.handle,
          ...forKey,
        })
        const no = await activateCredential(s, {
          activateHandle: KEY,
          ekHandle: ek.handle,
          ...forOther,
        }).catch((e: unknown) => e)
        return [ok, no] as const
      } finally {
        await flushContext(s, ek.handle)
      }
    })
    expect(hex(got)).toBe(hex(secret))
    expect(refused).toBeInstanceOf(TpmCommandError)
    expect((refused as TpmCommandError).details.reason).toBe('credential-refused')
  })

  it('refuses to activate for a public-only copy of a key (what a bus attacker could load)', async () => {
    // The attacker's key, as he would show it: the same template, made in another TPM; he
    // loads its public area alone into the genuine TPM (LoadExternal) and points
    // ActivateCredential at that copy. Its authValue and policy are unavailable, so no.
    const other = await startSwtpm()
    try {
      const ctx = join(other.stateDir, 'k.ctx')
      const t = { tcti: other.tcti, timeoutMs: 20_000 }
      await runTpm2Tool(
        t,
        'tpm2_createprimary',
        [
          ...['-C', 'o', '-g', 'sha256', '-G', 'rsa2048:oaep-sha256:null'],
          ...['-a', 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|decrypt'],
          ...['-u', '-', '-c', ctx, '-Q'],
        ],
        { input: randomBytes(32) },
      )
      const his = await withChannel(transportFor(other.tcti, 20_000)!, async (s) => {
        const r = plainResponse(
          'TPM2_ReadPublic',
          await s(plainCommand(TPM_CC.ReadPublic, [0x80000000], new Uint8Array(0))),
        )
        return parseRsaPublic(r.sized('outPublic', 1024))
      })
      const secret = new Uint8Array(randomBytes(32))
      const credential = await makeCredentialWithTools(
        join(tpm.stateDir, 'ek.pub'),
        his.name,
        secret,
      )
      const outcome = await withChannel(transport, async (s) => {
        const load = new TpmWriter()
          .sized(new Uint8Array(0))
          .sized(his.publicArea)
          .u32(TPM_RH_NULL)
          .bytes()
        const loaded = await s(plainCommand(TPM_CC.LoadExternal, [], load)).then((r) =>
          plainResponse('TPM2_LoadExternal', r).u32('objectHandle'),
        )
        const ek = await createEkPrimary(s)
        try {
          return await activateCredential(s, {
            activateHandle: loaded,
            ekHandle: ek.handle,
            ...credential,
          }).catch((e: unknown) => e)
        } finally {
          await flushContext(s, ek.handle)
          await flushContext(s, loaded)
        }
      })
      // TPM_RC_AUTH_UNAVAILABLE: a public-only object cannot be authorized (ADMIN role).
      expect(outcome).toBeInstanceOf(TpmCommandError)
      expect((outcome as TpmCommandError).details.base).toBe('0x12f')
    } finally {
      await other.stop()
    }
  })
})
