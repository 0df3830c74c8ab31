/**
 * NV counters and PolicyNV against a real swtpm (ADR 0094): an index defined with an owner
 * write policy (PolicySigned), its name as the TPM and tpm2-tools compute it, an increment
 * authorized by the owner's signature over the TPM's nonce and the command's cpHash (refused
 * for another key), the counter read in a salted session, and PolicyNV: the digest the TPM
 * computes equals ours and tpm2_policynv's; another value is refused `TPM_RC_POLICY`.
 */
import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { execa } from 'execa'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  counterBytes,
  flushContext,
  forgetSession,
  type NvPublic,
  nvDefineSpace,
  nvIncrementSigned,
  nvName,
  nvReadCounterInSession,
  nvReadPublic,
  nvUndefineSpace,
  p256VerifyKeyPublic,
  policyGetDigest,
  policyNv,
  policyNvDigest,
  policySignedDigest,
  type RsaKeyPublic,
  readRsaPublic,
  runTpm2Tool,
  startSaltedSession,
  TPM_ALG,
  TPM_EO,
  TPMA_NV,
  TpmCommandError,
  TpmPolicyError,
  type TpmTransport,
  transportFor,
  withChannel,
} from '../src/index.ts'
import { type Swtpm, startSwtpm } from '../src/testing.ts'
import { testP256Key } from './helpers/p256.ts'

const KEY = 0x81000022
const INDEX = 0x01800022
const ZERO = new Uint8Array(32)

let tpm: Swtpm
let transport: TpmTransport
let saltKey: { handle: number; public: RsaKeyPublic }
const owner = testP256Key()
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

function counterPublic(written: boolean): NvPublic {
  return {
    index: INDEX,
    nameAlg: TPM_ALG.SHA256,
    attributes:
      TPMA_NV.counter |
      TPMA_NV.policyWrite |
      TPMA_NV.authRead |
      TPMA_NV.noDA |
      (written ? TPMA_NV.written : 0),
    authPolicy: policySignedDigest(ZERO, p256VerifyKeyPublic(owner.publicKey).name),
    dataSize: 8,
  }
}

const tools = () => ({ env: { TPM2TOOLS_TCTI: tpm.tcti } })

beforeAll(async () => {
  tpm = await startSwtpm()
  transport = transportFor(tpm.tcti, 20_000)!
  const ctx = join(tpm.stateDir, 'k.ctx')
  const t = { tcti: tpm.tcti, timeoutMs: 20_000 }
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
  await runTpm2Tool(t, 'tpm2_evictcontrol', ['-C', 'o', '-c', ctx, `0x${KEY.toString(16)}`, '-Q'])
  await runTpm2Tool(t, 'tpm2_flushcontext', ['-t'])
  saltKey = { handle: KEY, public: await withChannel(transport, (s) => readRsaPublic(s, KEY)) }
}, 60_000)

afterAll(async () => {
  await tpm?.stop()
})

describe('NV counter with an owner-signed write policy (swtpm)', () => {
  it('defines the index; its name is the one computed in software and by tpm2-tools', async () => {
    expect(await withChannel(transport, (s) => nvReadPublic(s, INDEX))).toBeUndefined()
    await withChannel(transport, (s) => nvDefineSpace(s, counterPublic(false)))
    const read = await withChannel(transport, (s) => nvReadPublic(s, INDEX))
    expect(hex(read!.name)).toBe(hex(nvName(counterPublic(false))))
    const { stdout } = await execa('tpm2_nvreadpublic', [`0x${INDEX.toString(16)}`], tools())
    expect(stdout).toContain(`name: ${hex(nvName(counterPublic(false)))}`)
    // Defined twice: the TPM's NV_DEFINED, typed.
    const again = await withChannel(transport, (s) => nvDefineSpace(s, counterPublic(false))).catch(
      (e: unknown) => e,
    )
    expect(again).toBeInstanceOf(TpmCommandError)
    expect((again as TpmCommandError).details.base).toBe('0x14c')
  })

  it('increments only with the owner’s signature; the value is read in a salted session', async () => {
    const stranger = testP256Key()
    const refused = await withChannel(transport, (s) =>
      nvIncrementSigned(s, saltKey, INDEX, nvName(counterPublic(false)), owner.publicKey, (d) =>
        stranger.sign(d),
      ),
    ).catch((e: unknown) => e)
    expect(refused).toBeInstanceOf(TpmPolicyError)
    expect((refused as TpmPolicyError).details.reason).toBe('approval-invalid')
    // Not written yet: the name still lacks TPMA_NV_WRITTEN.
    const before = await withChannel(transport, (s) => nvReadPublic(s, INDEX))
    expect(before!.public.attributes & TPMA_NV.written).toBe(0)

    await withChannel(transport, (s) =>
      nvIncrementSigned(s, saltKey, INDEX, nvName(counterPublic(false)), owner.publicKey, (d) =>
        owner.sign(d),
      ),
    )
    const written = nvName(counterPublic(true))
    const after = await withChannel(transport, (s) => nvReadPublic(s, INDEX))
    expect(hex(after!.name)).toBe(hex(written))
    const first = await withChannel(transport, (s) =>
      nvReadCounterInSession(s, saltKey, INDEX, written),
    )
    await withChannel(transport, (s) =>
      nvIncrementSigned(s, saltKey, INDEX, written, owner.publicKey, (d) => owner.sign(d)),
    )
    const second = await withChannel(transport, (s) =>
      nvReadCounterInSession(s, saltKey, INDEX, written),
    )
    expect(second).toBe(first + 1n)
    // tpm2-tools reads the same 8 bytes.
    const { stdout } = await execa(
      'tpm2_nvread',
      [`0x${INDEX.toString(16)}`, '-C', `0x${INDEX.toString(16)}`, '-s', '8'],
      { ...tools(), encoding: 'buffer' },
    )
    expect(hex(new Uint8Array(stdout))).toBe(hex(counterBytes(second)))
    // An undefined index is gone for nvReadPublic.
    expect(await withChannel(transport, (s) => nvReadPublic(s, 0x01800023))).toBeUndefined()
  })

  it('PolicyNV: the TPM’s digest is ours and tpm2_policynv’s; another value is TPM_RC_POLICY', async () => {
    const written = nvName(counterPublic(true))
    const value = await withChannel(transport, (s) =>
      nvReadCounterInSession(s, saltKey, INDEX, written),
    )
    const expected = policyNvDigest(ZERO, written, counterBytes(value), 0, TPM_EO.EQ)
    const digest = await withChannel(transport, async (s) => {
      const session = await startSaltedSession(s, saltKey, 'policy')
      try {
        await policyNv(s, session, INDEX, counterBytes(value), 0, TPM_EO.EQ)
        return await policyGetDigest(s, session)
      } finally {
        forgetSession(session)
        await flushContext(s, session.handle)
      }
    })
    expect(hex(digest)).toBe(hex(expected))

    // tpm2-tools, independently: a trial session, operandB from stdin.
    const session = join(tpm.stateDir, 'trial.ctx')
    const out = join(tpm.stateDir, 'policynv.digest')
    await execa('tpm2_startauthsession', ['-S', session], tools())
    await execa(
      'tpm2_policynv',
      ['-S', session, '-i-', '-L', out, `0x${INDEX.toString(16)}`, 'eq'],
      { ...tools(), input: Buffer.from(counterBytes(value)) },
    )
    await execa('tpm2_flushcontext', [session], tools())
    expect(hex(new Uint8Array(await readFile(out)))).toBe(hex(expected))

    const refused = await withChannel(transport, async (s) => {
      const session = await startSaltedSession(s, saltKey, 'policy')
      try {
        await policyNv(s, session, INDEX, counterBytes(value - 1n), 0, TPM_EO.EQ)
      } finally {
        forgetSession(session)
        await flushContext(s, session.handle)
      }
    }).catch((e: unknown) => e)
    expect(refused).toBeInstanceOf(TpmCommandError)
    expect((refused as TpmCommandError).details).toMatchObject({
      command: 'TPM2_PolicyNV',
      base: '0x126',
    })
  })

  it('a counter undefined and defined again never goes back (the TPM keeps the highest value)', async () => {
    const written = nvName(counterPublic(true))
    const last = await withChannel(transport, (s) =>
      nvReadCounterInSession(s, saltKey, INDEX, written),
    )
    await withChannel(transport, (s) => nvUndefineSpace(s, INDEX))
    expect(await withChannel(transport, (s) => nvReadPublic(s, INDEX))).toBeUndefined()
    await withChannel(transport, (s) => nvDefineSpace(s, counterPublic(false)))
    await withChannel(transport, (s) =>
      nvIncrementSigned(s, saltKey, INDEX, nvName(counterPublic(false)), owner.publicKey, (d) =>
        owner.sign(d),
      ),
    )
    const again = await withChannel(transport, (s) =>
      nvReadCounterInSession(s, saltKey, INDEX, written),
    )
    expect(again > last).toBe(true)
  })
})
