/**
 * The attestation agent on a real swtpm, through the same direct transport a device TPM uses:
 * it provisions TCG EKs (RSA-2048, ECC P-256) and AKs under them, answers the TypeScript
 * MakeCredential, measures a run into PCR 23 with its event log, and its quotes pass the
 * verifier's before / during / after verdicts — and fail them when bound to another nonce,
 * grant or key. A dictionary-attack lockout is a typed TpmLockoutError, and clearing the
 * lockout (as the README says) brings quotes back.
 */
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { DigicapError } from '@digicap/capsule-core'
import { TpmLockoutError } from '@digicap/tpm'
import { type Swtpm, startSwtpm } from '@digicap/tpm/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type AttestationAgent, createAttestationAgent } from '../src/agent/index.ts'
import {
  expectedRunMeasurement,
  importAttestationKey,
  makeCredential,
  parseQuoteAttest,
  type QuoteClock,
  quoteBinding,
  RunPcrNotResetError,
  replayEventLog,
  verifyPhase,
  verifyQuote,
} from '../src/index.ts'

const run = promisify(execFile)
const bytes = (n = 32) => new Uint8Array(randomBytes(n))

let tpm: Swtpm
let rsa: AttestationAgent
let ecc: AttestationAgent
let rsaKeys: { ekPublic: Uint8Array; akPublic: Uint8Array }
let eccKeys: { ekPublic: Uint8Array; akPublic: Uint8Array }

beforeAll(async () => {
  tpm = await startSwtpm()
  rsa = createAttestationAgent({ tcti: tpm.tcti })
  ecc = createAttestationAgent({ tcti: tpm.tcti, ek: 'ecc', akHandle: 0x81010011 })
  rsaKeys = await rsa.provision()
  eccKeys = await ecc.provision()
}, 120_000)

afterAll(async () => {
  await tpm?.stop()
})

const codeOf = (f: () => unknown): string => {
  try {
    f()
    return 'ok'
  } catch (err) {
    return err instanceof DigicapError ? err.code : String(err)
  }
}

describe('keys', () => {
  it('provisions a TCG EK and a restricted signing AK under it, once', async () => {
    for (const [keys, type] of [
      [rsaKeys, 0x0001],
      [eccKeys, 0x0023],
    ] as const) {
      const ak = importAttestationKey(keys)
      expect(ak.public.type).toBe(type)
      expect(ak.ek.type).toBe(type)
    }
    const again = await rsa.provision()
    expect(Buffer.from(again.akPublic)).toEqual(Buffer.from(rsaKeys.akPublic))
    expect(Buffer.from(again.ekPublic)).toEqual(Buffer.from(rsaKeys.ekPublic))
  })

  it('answers MakeCredential (RSA and ECC EK) with the secret, only for its own AK', async () => {
    for (const [agent, keys, other] of [
      [rsa, rsaKeys, eccKeys],
      [ecc, eccKeys, rsaKeys],
    ] as const) {
      const secret = bytes()
      const { name } = importAttestationKey(keys)
      const got = await agent.activateCredential(
        makeCredential({ ekPublic: keys.ekPublic, objectName: name, secret }),
      )
      expect(Buffer.from(got)).toEqual(Buffer.from(secret))
      // a credential for the other node's AK name does not open here
      const foreign = makeCredential({
        ekPublic: keys.ekPublic,
        objectName: importAttestationKey(other).name,
        secret,
      })
      await expect(agent.activateCredential(foreign)).rejects.toBeInstanceOf(DigicapError)
    }
  })
})

describe('a run measured and quoted', () => {
  it('passes before, during and after on both AKs, and each quote only for its own binding', async () => {
    for (const [agent, keys] of [
      [rsa, rsaKeys],
      [ecc, eccKeys],
    ] as const) {
      const grantId = bytes()
      const ephemeralPublicKey = bytes(65)
      const run = {
        runtimeDigest: bytes(),
        capsuleHeaderHash: bytes(),
        grantId,
        ephemeralPublicKey,
      }
      await agent.resetRunPcr()
      const nonce1 = bytes()
      const before = await agent.quote({ nonce: nonce1, grantId, ephemeralPublicKey })
      const bootPcrs = new Map([...before.pcrValues].filter(([i]) => i !== 23))
      const expect_ = (
        q: typeof before,
        phase: 'before' | 'during' | 'after',
        nonce: Uint8Array,
        previous?: QuoteClock,
      ) =>
        codeOf(() =>
          verifyPhase(q, {
            phase,
            attestationKey: keys,
            qualifyingData: quoteBindingOf(nonce, grantId, ephemeralPublicKey),
            bootPcrs,
            eventLog: q.eventLog,
            run,
            ...(previous === undefined ? {} : { previous }),
          }),
        )
      expect(expect_(before, 'before', nonce1)).toBe('ok')
      expect(before.eventLog.map((e) => e.kind)).toEqual(['reset'])

      await agent.beginRun(run)
      const nonce2 = bytes()
      const during = await agent.quote({ nonce: nonce2, grantId, ephemeralPublicKey })
      expect(expect_(during, 'during', nonce2)).toBe('ok')
      expect(expect_(during, 'before', nonce2)).toBe('QUOTE_RUN_PCR')
      expect(expect_(during, 'during', nonce1)).toBe('QUOTE_NONCE')
      expect(during.eventLog.map((e) => e.kind)).toEqual([
        'reset',
        'runtime',
        'capsule-header',
        'grant',
        'ephemeral-key',
      ])

      await agent.endRun({ grantId, workspaceRemoved: true, keyBuffersWiped: true })
      const nonce3 = bytes()
      const after = await agent.quote({ nonce: nonce3, grantId, ephemeralPublicKey })
      const previous = parseQuoteAttest(before.attest).clockInfo
      expect(expect_(after, 'after', nonce3, previous)).toBe('ok')
      expect(after.cleanup).toMatchObject({ workspaceRemoved: true, keyBuffersWiped: true })
      expect(Buffer.from(after.cleanup?.grantId ?? [])).toEqual(Buffer.from(grantId))
      // the same quote bound to another grant or another key is refused
      expect(
        codeOf(() =>
          verifyQuote(after, {
            attestationKey: keys,
            qualifyingData: quoteBindingOf(nonce3, bytes(), ephemeralPublicKey),
          }),
        ),
      ).toBe('QUOTE_NONCE')
      expect(
        codeOf(() =>
          verifyQuote(after, {
            attestationKey: keys,
            qualifyingData: quoteBindingOf(nonce3, grantId, bytes(65)),
          }),
        ),
      ).toBe('QUOTE_NONCE')
      // and a quote from this AK does not pass as the other node's
      const other = keys === rsaKeys ? eccKeys : rsaKeys
      expect(
        codeOf(() =>
          verifyQuote(after, {
            attestationKey: other,
            qualifyingData: quoteBindingOf(nonce3, grantId, ephemeralPublicKey),
          }),
        ),
      ).not.toBe('ok')
    }
  })

  it('measureRun extends only from the reset value, never hiding an unfinished run', async () => {
    const run = {
      runtimeDigest: bytes(),
      capsuleHeaderHash: bytes(),
      grantId: bytes(),
      ephemeralPublicKey: bytes(),
    }
    await rsa.resetRunPcr()
    await rsa.measureRun(run)
    const measured = await rsa.readRunPcr()
    expect(measured).toEqual(replayEventLog(rsa.eventLog()))
    expect(measured).toEqual(expectedRunMeasurement(run))
    // a second run on top of the first (its clean-up never came) is refused, PCR 23 untouched
    await expect(rsa.measureRun({ ...run, grantId: bytes() })).rejects.toBeInstanceOf(
      RunPcrNotResetError,
    )
    await expect(rsa.measureRun(run)).rejects.toMatchObject({ code: 'RUN_PCR_NOT_RESET' })
    expect(await rsa.readRunPcr()).toEqual(measured)
    await rsa.endRun({ grantId: run.grantId, workspaceRemoved: true, keyBuffersWiped: true })
    expect(await rsa.readRunPcr()).toEqual(new Uint8Array(32))
    await rsa.measureRun(run)
    await rsa.resetRunPcr()
  })

  it('refuses bad arguments with typed errors before touching the TPM', async () => {
    expect(() => createAttestationAgent({ tcti: 'mssim:host=localhost' })).toThrow(DigicapError)
    expect(() => createAttestationAgent({ tcti: tpm.tcti, akHandle: 5 })).toThrow(DigicapError)
    expect(() => createAttestationAgent({ tcti: tpm.tcti, ek: 'dsa' as unknown as 'rsa' })).toThrow(
      DigicapError,
    )
    await expect(
      rsa.quote({ nonce: bytes(31), grantId: bytes(), ephemeralPublicKey: bytes() }),
    ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
    await expect(
      rsa.beginRun({
        runtimeDigest: bytes(31),
        capsuleHeaderHash: bytes(),
        grantId: bytes(),
        ephemeralPublicKey: bytes(),
      }),
    ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
    // the device path (/dev/tpmrm0 on hardware) is the same transport: a missing device is typed
    const device = createAttestationAgent({ tcti: 'device:/dev/nonexistent-tpmrm0' })
    await expect(
      device.quote({ nonce: bytes(), grantId: bytes(), ephemeralPublicKey: bytes() }),
    ).rejects.toMatchObject({
      code: 'TPM_UNAVAILABLE',
      details: { reason: 'tcti', errno: 'ENOENT' },
    })
    await expect(device.resetRunPcr()).rejects.toMatchObject({ code: 'TPM_UNAVAILABLE' })
    const unprovisioned = createAttestationAgent({ tcti: tpm.tcti, akHandle: 0x81010099 })
    await expect(
      unprovisioned.quote({ nonce: bytes(), grantId: bytes(), ephemeralPublicKey: bytes() }),
    ).rejects.toMatchObject({ code: 'TPM_HANDLE' })
  })
})

describe('dictionary-attack lockout', () => {
  it('is a TpmLockoutError on quote, and clearing the lockout brings quotes back', async () => {
    const env = { ...process.env, TPM2TOOLS_TCTI: tpm.tcti }
    const binding = { nonce: bytes(), grantId: bytes(), ephemeralPublicKey: bytes() }
    // one failed authorization locks the TPM out (maxTries 1), as unclean shutdowns do over time
    await run('tpm2_dictionarylockout', ['-s', '-n', '1', '-t', '600', '-l', '600'], { env })
    await expect(
      run(
        'tpm2_sign',
        ['-c', '0x81010010', '-p', 'wrong', '-g', 'sha256', '-d', '-o', '/dev/null', '/dev/null'],
        { env },
      ),
    ).rejects.toThrow()
    const err = await rsa.quote(binding).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(TpmLockoutError)
    expect((err as TpmLockoutError).code).toBe('TPM_BUSY')
    expect((err as TpmLockoutError).details).toMatchObject({
      reason: 'lockout',
      command: 'TPM2_Quote',
    })
    await run('tpm2_dictionarylockout', ['--clear-lockout'], { env })
    const q = await rsa.quote(binding)
    expect(q.attest.length).toBeGreaterThan(0)
  })
})

function quoteBindingOf(nonce: Uint8Array, grantId: Uint8Array, ephemeralPublicKey: Uint8Array) {
  return quoteBinding({ nonce, grantId, ephemeralPublicKey })
}

describe('lockout after unclean shutdowns (as seen on swtpm)', () => {
  it('counts each power loss after AK use; an orderly shutdown does not count; clearing recovers', async () => {
    const stateDir = await mkdtemp(join(tmpdir(), 'digicap-lockout-'))
    let own = await startSwtpm({ stateDir })
    try {
      const env = () => ({ ...process.env, TPM2TOOLS_TCTI: own.tcti })
      const binding = { nonce: bytes(), grantId: bytes(), ephemeralPublicKey: bytes() }
      let agent = createAttestationAgent({ tcti: own.tcti })
      await agent.provision()
      await run('tpm2_dictionarylockout', ['-s', '-n', '3', '-t', '600', '-l', '600'], {
        env: env(),
      })
      const restart = async (orderly: boolean) => {
        if (orderly) await run('tpm2_shutdown', [], { env: env() })
        await own.stop() // swtpm killed: without TPM2_Shutdown this is a power loss
        own = await startSwtpm({ stateDir })
        agent = createAttestationAgent({ tcti: own.tcti })
      }
      // orderly shutdowns after AK use: never a lockout
      for (let i = 0; i < 4; i++) {
        await agent.quote(binding)
        await restart(true)
      }
      await agent.quote(binding)
      // three power losses after AK use: the fourth quote is refused
      for (let i = 0; i < 3; i++) {
        await agent.quote(binding).catch(() => undefined)
        await restart(false)
      }
      const err = await agent.quote(binding).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(TpmLockoutError)
      await run('tpm2_dictionarylockout', ['--clear-lockout'], { env: env() })
      expect((await agent.quote(binding)).attest.length).toBeGreaterThan(0)
    } finally {
      await own.stop()
      await rm(stateDir, { recursive: true, force: true })
    }
  })
})
