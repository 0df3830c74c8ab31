/**
 * A PCR-bound key made before ADR 0094 (authPolicy = PolicyAuthorize(owner key) with an empty
 * policyRef, created as the older code created it) keeps working: init/serve pin it (record
 * version 2), `key-policy authorize` approves without an epoch counter, it unwraps; and it is
 * reported as lacking rollback protection, with how to re-provision — a key provisioned at a
 * free handle (what `recover` then does) is rollback-protected.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { p256VerifyKeyPublic, policyAuthorizeDigest } from '@digicap/tpm'
import { execa } from 'execa'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  derivePolicyAuthKey,
  generateMnemonic,
  keyPolicyAuthorize,
  keyPolicyView,
  type PolicyAuthKey,
  readKeyRecord,
  renderKeyPolicy,
  TpmPolicyError,
  tpm2Sealer,
} from '../src/index.ts'
import { type Swtpm, startSwtpm } from '../src/testing.ts'

const PCRS = [16]
const OLD_HANDLE = 0x81000051
const NEW_HANDLE = 0x81000052
const quiet = { info: () => {}, warn: () => {} }

let tpm: Swtpm
let dir: string
let words: string
let authKey: PolicyAuthKey

const tools = () => ({ env: { TPM2TOOLS_TCTI: tpm.tcti } })

/** The key as the code before ADR 0094 provisioned it. */
async function createOldKey(handle: number): Promise<void> {
  const policy = join(dir, 'old-policy.digest')
  await writeFile(policy, policyAuthorizeDigest(p256VerifyKeyPublic(authKey.publicKey).name))
  const ctx = join(dir, 'old.ctx')
  await execa(
    'tpm2_createprimary',
    [
      ...['-C', 'o', '-g', 'sha256', '-G', 'rsa2048:oaep-sha256:null'],
      ...['-a', 'fixedtpm|fixedparent|sensitivedataorigin|noda|decrypt', '-L', policy],
      ...['-u', '-', '-c', ctx, '-Q'],
    ],
    { ...tools(), input: randomBytes(32) },
  )
  await execa('tpm2_evictcontrol', ['-C', 'o', '-c', ctx, `0x${handle.toString(16)}`], tools())
  await execa('tpm2_flushcontext', ['-t'], tools())
}

beforeAll(async () => {
  tpm = await startSwtpm()
  dir = await mkdtemp(join(tmpdir(), 'kg-legacy-'))
  words = generateMnemonic()
  authKey = await derivePolicyAuthKey(words)
  await createOldKey(OLD_HANDLE)
}, 60_000)

afterAll(async () => {
  await tpm?.stop()
  if (dir) await rm(dir, { recursive: true, force: true })
})

describe('a PCR-bound key made before ADR 0094', () => {
  it('keeps working, approved without a counter, and is reported without rollback protection', async () => {
    const recordFile = join(dir, 'old-tpm2-key.json')
    // init/recover on the node that has it: the key fits, it is pinned as it is.
    const init = tpm2Sealer({
      tcti: tpm.tcti,
      handle: OLD_HANDLE,
      keyRecordFile: recordFile,
      createIfMissing: true,
      pcrPolicy: { authKey: authKey.publicKey, pcrs: PCRS },
      logger: quiet,
    })
    const dataKey = new Uint8Array(randomBytes(32))
    const wrapped = await init.wrap(dataKey)
    expect((await readKeyRecord(recordFile))?.version).toBe(2)
    await keyPolicyAuthorize(tpm.tcti, recordFile, words)
    const approval = (await readKeyRecord(recordFile))?.policy?.approval
    expect(approval?.epoch).toBeUndefined()
    // No counter was defined for it (0x01800051: the index paired with its handle).
    const nv = await execa('tpm2_nvreadpublic', ['0x01800051'], {
      ...tools(),
      reject: false,
    })
    expect(nv.exitCode).not.toBe(0)

    // serve: a sealer on the record alone unwraps.
    const serve = tpm2Sealer({
      tcti: tpm.tcti,
      handle: OLD_HANDLE,
      keyRecordFile: recordFile,
      logger: quiet,
    })
    expect(Buffer.from(await serve.unwrap(wrapped)).equals(Buffer.from(dataKey))).toBe(true)

    const described = await serve.describe()
    expect(String(described.details?.rollbackProtection)).toMatch(
      /^NONE: every PCR approval ever signed stays valid/,
    )
    expect(String(described.details?.rollbackProtection)).toMatch(/sealer\.handle.*pi-node recover/)
    const view = await keyPolicyView(tpm.tcti, recordFile)
    expect(view.rollback).toMatchObject({ protected: false })
    expect(view.rollback?.hint).toMatch(/pi-node recover/)
    expect(renderKeyPolicy(view)).toMatch(/NO ROLLBACK PROTECTION/)
  })

  it('re-provisioned at a free handle (what recover does), the key is rollback-protected', async () => {
    const recordFile = join(dir, 'new-tpm2-key.json')
    const sealer = tpm2Sealer({
      tcti: tpm.tcti,
      handle: NEW_HANDLE,
      keyRecordFile: recordFile,
      createIfMissing: true,
      pcrPolicy: { authKey: authKey.publicKey, pcrs: PCRS },
      logger: quiet,
    })
    const dataKey = new Uint8Array(randomBytes(32))
    const wrapped = await sealer.wrap(dataKey)
    await keyPolicyAuthorize(tpm.tcti, recordFile, words)
    expect((await readKeyRecord(recordFile))?.version).toBe(3)
    expect(Buffer.from(await sealer.unwrap(wrapped)).equals(Buffer.from(dataKey))).toBe(true)
    expect(String((await sealer.describe()).details?.rollbackProtection)).toMatch(
      /^NV epoch counter 0x01800052/,
    )
    expect((await keyPolicyView(tpm.tcti, recordFile)).rollback?.protected).toBe(true)
  })

  it('an owner hierarchy with a password: the counter cannot be defined again, a typed error says why', async () => {
    const recordFile = join(dir, 'new-tpm2-key.json')
    await execa('tpm2_changeauth', ['-c', 'o', 'owner-secret'], tools())
    try {
      await execa('tpm2_nvundefine', ['0x01800052', '-C', 'o', '-P', 'owner-secret'], tools())
      const err = await keyPolicyAuthorize(tpm.tcti, recordFile, words).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(TpmPolicyError)
      expect((err as TpmPolicyError).details).toMatchObject({
        reason: 'owner-auth',
        index: '0x01800052',
        command: 'TPM2_NV_DefineSpace',
      })
      expect((err as TpmPolicyError).hint).toMatch(/tpm2_changeauth/)
    } finally {
      await execa('tpm2_changeauth', ['-c', 'o', '-p', 'owner-secret'], tools())
    }
    await keyPolicyAuthorize(tpm.tcti, recordFile, words)
    expect((await keyPolicyView(tpm.tcti, recordFile)).rollback?.epoch?.state).toBe('ok')
  })
})
