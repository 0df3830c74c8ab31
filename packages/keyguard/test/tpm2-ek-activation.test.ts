/**
 * First contact, checked (ADR 0097; ADR 0089 "First contact is trusted"). Init pins the
 * wrapping key's public area from an unauthenticated TPM2_ReadPublic; a man on the TPM bus at
 * init could make the node pin a key of his own TPM, and every later session would be salted to
 * it. Now the key is pinned only once the TPM whose EK its maker certified activates a
 * credential made for the key's name. Real swtpms manufactured with EK certificates
 * (`swtpm_setup --create-ek-cert`, a local CA each):
 *
 * 1. honest init: activated, the record names the EK certificate, `describe()` says so;
 * 2. an interposer answers ReadPublic from ANOTHER swtpm (the attacker's TPM): refused
 *    `TPM_IDENTITY` `activation-refused`, nothing pinned (before: his key was pinned);
 * 3. an EK certificate from a CA that is not among the roots: refused `ek-untrusted`;
 * 4. no roots: an emulator is pinned as UNVERIFIED, a hardware TCTI is refused `no-ek-roots`
 *    unless `allowUnverified`, which is recorded and shown as UNVERIFIED TPM.
 */
import { createHash } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseEkRoots } from '@digicap/attestation'
import {
  EK_RSA_CERTIFICATE_INDEX,
  readEkCertificateNv,
  type TpmTransport,
  transportFor,
  withChannel,
} from '@digicap/tpm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readKeyRecord, TpmIdentityError, tpm2Sealer } from '../src/index.ts'
import { type Swtpm, startSwtpm } from '../src/testing.ts'

const HANDLE = 0x81000071
const quiet = { info: () => {}, warn: () => {} }

let genuine: Swtpm
let attacker: Swtpm
let dir: string
let n = 0
const recordFile = () => join(dir, `tpm2-key-${++n}.json`)

beforeAll(async () => {
  ;[genuine, attacker] = await Promise.all([
    startSwtpm({ ekCertificate: true }),
    startSwtpm({ ekCertificate: true }),
  ])
  dir = await mkdtemp(join(tmpdir(), 'kg-ek-activation-'))
  // Both TPMs hold a wrapping key at the handle: the genuine one (made by an earlier init, or
  // by init itself before the interposer answers), and the attacker's own.
  for (const tpm of [genuine, attacker]) {
    await tpm2Sealer({ tcti: tpm.tcti, handle: HANDLE, createIfMissing: true }).publicKey()
  }
}, 120_000)

afterAll(async () => {
  await Promise.all([genuine?.stop(), attacker?.stop()])
  if (dir) await rm(dir, { recursive: true, force: true })
})

/**
 * The bus interposer: every command goes to the genuine TPM, except TPM2_ReadPublic of the
 * wrapping key's handle, which the attacker's TPM answers.
 */
function interposer(): TpmTransport {
  const real = transportFor(genuine.tcti, 20_000)!
  const his = transportFor(attacker.tcti, 20_000)!
  return {
    kind: 'socket',
    target: genuine.tcti,
    send(command: Uint8Array) {
      const view = new DataView(command.buffer, command.byteOffset)
      const readPublicOfKey = view.getUint32(6) === 0x173 && view.getUint32(10) === HANDLE
      return readPublicOfKey ? his.send(command) : real.send(command)
    },
  }
}

describe('a key is pinned only once a certified TPM activates a credential for it', () => {
  it('honest init: activated against the EK certificate, recorded and described', async () => {
    const file = recordFile()
    const sealer = tpm2Sealer({
      tcti: genuine.tcti,
      handle: HANDLE,
      createIfMissing: true,
      keyRecordFile: file,
      ekActivation: { ekRoots: parseEkRoots(genuine.ekRoots!) },
      logger: quiet,
    })
    await sealer.publicKey()
    const cert = await withChannel(transportFor(genuine.tcti, 20_000)!, (s) =>
      readEkCertificateNv(s, EK_RSA_CERTIFICATE_INDEX),
    )
    const record = await readKeyRecord(file)
    expect(record?.ekActivation).toMatchObject({
      verified: true,
      certificateSha256: createHash('sha256').update(cert!).digest('hex'),
    })
    expect(record?.ekActivation?.verified && record.ekActivation.issuer).toMatch(/CN=/)
    const d = await sealer.describe()
    expect(d.details.tpmIdentity).toMatch(/^EK-activated: EK certificate sha256:[0-9a-f]{16}/)

    // A record pinned before ADR 0097 (no ekActivation): a serving start leaves it; init or
    // recover on the same key check it then.
    const { ekActivation: _e, ...older } = JSON.parse(await readFile(file, 'utf8'))
    await writeFile(file, JSON.stringify(older), { mode: 0o600 })
    const open = (createIfMissing: boolean) =>
      tpm2Sealer({
        tcti: genuine.tcti,
        handle: HANDLE,
        createIfMissing,
        keyRecordFile: file,
        ekActivation: { ekRoots: parseEkRoots(genuine.ekRoots!) },
        logger: quiet,
      })
    const serving = open(false)
    expect((await serving.describe()).details.tpmIdentity).toBe(
      'not checked (key pinned before ADR 0097)',
    )
    expect((await readKeyRecord(file))?.ekActivation).toBeUndefined()
    await open(true).publicKey()
    expect((await readKeyRecord(file))?.ekActivation).toEqual(record?.ekActivation)
  })

  it('an interposer showing his own TPM’s key: refused, nothing pinned', async () => {
    const file = recordFile()
    const err = await tpm2Sealer({
      tcti: genuine.tcti,
      handle: HANDLE,
      createIfMissing: true,
      keyRecordFile: file,
      transport: interposer(),
      ekActivation: { ekRoots: parseEkRoots(genuine.ekRoots!) },
      logger: quiet,
    })
      .publicKey()
      .catch((e: unknown) => e)
    // Before ADR 0097 the attacker's key was pinned here: his name in the record.
    await expect(readFile(file)).rejects.toMatchObject({ code: 'ENOENT' })
    expect((err as TpmIdentityError).code).toBe('TPM_IDENTITY')
    expect((err as TpmIdentityError).details.reason).toBe('activation-refused')
  })

  it('an EK certificate from a CA outside the roots: refused', async () => {
    const file = recordFile()
    const err = await tpm2Sealer({
      tcti: genuine.tcti,
      handle: HANDLE,
      createIfMissing: true,
      keyRecordFile: file,
      ekActivation: { ekRoots: parseEkRoots(attacker.ekRoots!) },
      logger: quiet,
    })
      .publicKey()
      .catch((e: unknown) => e)
    expect(err).toBeInstanceOf(TpmIdentityError)
    expect((err as TpmIdentityError).details).toMatchObject({
      reason: 'ek-untrusted',
      check: 'untrusted',
    })
    await expect(readFile(file)).rejects.toMatchObject({ code: 'ENOENT' })
  })

  it('no roots: an emulator is pinned UNVERIFIED; hardware is refused unless allowed', async () => {
    const emulatorFile = recordFile()
    await tpm2Sealer({
      tcti: genuine.tcti,
      handle: HANDLE,
      createIfMissing: true,
      keyRecordFile: emulatorFile,
      ekActivation: {},
      logger: quiet,
    }).publicKey()
    expect((await readKeyRecord(emulatorFile))?.ekActivation).toEqual({
      verified: false,
      why: 'emulator',
    })
    // A hardware TCTI (the commands still reach the swtpm: the key exists, nothing is made).
    const hardware = (file: string, allowUnverified: boolean) =>
      tpm2Sealer({
        tcti: 'device:/dev/tpmrm0',
        handle: HANDLE,
        createIfMissing: true,
        keyRecordFile: file,
        transport: transportFor(genuine.tcti, 20_000)!,
        ekActivation: { allowUnverified },
        logger: quiet,
      })
    const refusedFile = recordFile()
    const err = await hardware(refusedFile, false)
      .publicKey()
      .catch((e: unknown) => e)
    expect(err).toBeInstanceOf(TpmIdentityError)
    expect((err as TpmIdentityError).details.reason).toBe('no-ek-roots')
    await expect(readFile(refusedFile)).rejects.toMatchObject({ code: 'ENOENT' })

    const allowedFile = recordFile()
    const allowed = hardware(allowedFile, true)
    await allowed.publicKey()
    expect((await readKeyRecord(allowedFile))?.ekActivation).toEqual({
      verified: false,
      why: 'allowed',
    })
    const d = await allowed.describe()
    expect(d.warning).toMatch(/^UNVERIFIED TPM/)
    expect(d.details.tpmIdentity).toMatch(/^UNVERIFIED TPM: pinned without credential activation/)
  })
})
