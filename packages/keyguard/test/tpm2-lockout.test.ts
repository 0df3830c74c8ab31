/**
 * Dictionary-attack lockout cannot stop the keyguard (ADR 0089). The wrapping key's authValue
 * is empty, so DA protection guards nothing on it; without `noDA` any lockout — failed
 * passwords on ANY DA-protected object by any process that reaches the TPM, or unclean power
 * cuts — refused every unwrap (`TPM_RC_LOCKOUT`) for the TPM's recovery time. Real swtpm: the
 * TPM is put in lockout by one wrong password on another object (maxTries 1), and the
 * keyguard's key keeps unwrapping, over the direct session path and over tpm2-tools.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { readRsaPublic, TPMA_OBJECT, transportFor, withChannel } from '@digicap/tpm'
import { execa } from 'execa'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { derivePolicyAuthKey, generateMnemonic, tpm2Sealer } from '../src/index.ts'
import { type Swtpm, startSwtpm } from '../src/testing.ts'

const quiet = { info: () => {}, warn: () => {} }
const VICTIM = 0x81000050
const BOUND = 0x81000051
const OTHER = 0x81000052

let tpm: Swtpm
let dir: string

const tools = (tool: string, args: string[], input?: Uint8Array) =>
  execa(tool, args, {
    env: { TPM2TOOLS_TCTI: tpm.tcti },
    reject: false,
    ...(input ? { input: Buffer.from(input) } : {}),
  })

async function attributesAt(handle: number): Promise<number> {
  const transport = transportFor(tpm.tcti, 10_000)!
  return (await withChannel(transport, (send) => readRsaPublic(send, handle))).objectAttributes
}

beforeAll(async () => {
  tpm = await startSwtpm()
  dir = await mkdtemp(join(tmpdir(), 'kg-lockout-'))
}, 60_000)

afterAll(async () => {
  await tpm?.stop()
  if (dir) await rm(dir, { recursive: true, force: true })
})

describe('wrapping key and dictionary-attack lockout (swtpm)', () => {
  it('creates both kinds of wrapping key with noDA', async () => {
    const plain = tpm2Sealer({ tcti: tpm.tcti, handle: VICTIM, createIfMissing: true })
    await plain.publicKey()
    expect((await attributesAt(VICTIM)) & TPMA_OBJECT.noDA).toBe(TPMA_OBJECT.noDA)
    const authKey = await derivePolicyAuthKey(generateMnemonic())
    const bound = tpm2Sealer({
      tcti: tpm.tcti,
      handle: BOUND,
      createIfMissing: true,
      keyRecordFile: join(dir, 'bound.json'),
      pcrPolicy: { authKey: authKey.publicKey, pcrs: [16] },
      logger: quiet,
    })
    await bound.publicKey()
    expect((await attributesAt(BOUND)) & TPMA_OBJECT.noDA).toBe(TPMA_OBJECT.noDA)
    expect((await plain.describe()).details).toMatchObject({ dictionaryAttack: 'exempt (noDA)' })
  })

  it('a TPM in lockout still unwraps (direct session and tpm2-tools)', async () => {
    const sealer = tpm2Sealer({
      tcti: tpm.tcti,
      handle: VICTIM,
      keyRecordFile: join(dir, 'victim.json'),
      logger: quiet,
    })
    const viaTools = tpm2Sealer({
      tcti: tpm.tcti,
      handle: VICTIM,
      unwrapVia: 'tools',
      allowUnencryptedTransport: true,
    })
    const key = randomBytes(32)
    const wrapped = await sealer.wrap(key)

    // Another DA-protected object with a password, outside the keyguard's reach.
    const ctx = join(dir, 'other.ctx')
    const made = await tools('tpm2_createprimary', [
      ...['-C', 'o', '-G', 'rsa2048:oaep-sha256:null', '-p', 'secret', '-c', ctx, '-Q'],
      ...['-a', 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|decrypt'],
    ])
    expect(made.exitCode, made.stderr).toBe(0)
    expect(
      (await tools('tpm2_evictcontrol', ['-C', 'o', '-c', ctx, `0x${OTHER.toString(16)}`]))
        .exitCode,
    ).toBe(0)
    await tools('tpm2_flushcontext', ['-t'])
    // One failure is a lockout: maxTries 1, recovery 1 h.
    const da = await tools('tpm2_dictionarylockout', ['-s', '-n', '1', '-t', '3600', '-l', '3600'])
    expect(da.exitCode, da.stderr).toBe(0)
    const wrong = await tools(
      'tpm2_rsadecrypt',
      ['-c', `0x${OTHER.toString(16)}`, '-p', 'wrong', '-s', 'oaep'],
      randomBytes(256),
    )
    expect(wrong.stderr).toMatch(/0x98e|authorization HMAC check failed|bad auth/i)
    // The TPM is in lockout now: the other object is refused even with its right password.
    const locked = await tools(
      'tpm2_rsadecrypt',
      ['-c', `0x${OTHER.toString(16)}`, '-p', 'secret', '-s', 'oaep'],
      randomBytes(256),
    )
    expect(locked.stderr).toMatch(/0x921|lockout/i)

    expect(Buffer.from(await sealer.unwrap(wrapped)).equals(key)).toBe(true)
    expect(Buffer.from(await viaTools.unwrap(wrapped)).equals(key)).toBe(true)
  })
})
