/**
 * Runs measured into PCR 23 on a real swtpm (ADR 0021): a real capsule run through the executor
 * (anvil, keyguard, libp2p) with the attestation agent as a component. Its before / during /
 * after quotes pass the verifier, the during one checked from the chain's grant alone; runs
 * on one TPM take turns (bounded); a run killed mid-way leaves PCR 23 measured and the next
 * run refuses until PCR 23 is reset.
 */
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import {
  type GrantMeasurement,
  type Phase,
  parseQuoteAttest,
  type QuoteClock,
  quoteBinding,
  verifyPhase,
} from '@digicap/attestation'
import {
  type AgentQuote,
  type AttestationAgent,
  createAttestationAgent,
} from '@digicap/attestation/agent'
import { DigicapError, runtimeDigest } from '@digicap/capsule-core'
import { maxRuns } from '@digicap/contracts'
import { deployPolicy } from '@digicap/contracts/compiler'
import { type Swtpm, startSwtpm } from '@digicap/keyguard/testing'
import { getBytes, hexlify } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createRunTurns,
  quickjsSandbox,
  type RunLifecycleEvents,
  runInSandbox,
  runLifecycle,
} from '../src/index.ts'
import { jsBundle, type MadeCapsule, makeCapsule, setupWorld, type World } from './helpers/world.ts'

const bytes = () => new Uint8Array(randomBytes(32))

let tpm: Swtpm
let agent: AttestationAgent
let keys: { ekPublic: Uint8Array; akPublic: Uint8Array }
let bootPcrs: Map<number, Uint8Array>
let w: World
let capsule: MadeCapsule
const lifecycle = runLifecycle()
/** What the lifecycle saw, in order: `load` (PCR 23 still at reset) and `cleanup` per run. */
const seen: string[] = []
let onBeforeLoad: ((e: RunLifecycleEvents['before-load']) => Promise<void>) | undefined
let onAfterRun: (() => Promise<void>) | undefined

beforeAll(async () => {
  tpm = await startSwtpm()
  agent = createAttestationAgent({ tcti: tpm.tcti })
  keys = await agent.provision()
  await agent.resetRunPcr()
  const q = await agent.quote({ nonce: bytes(), grantId: bytes(), ephemeralPublicKey: bytes() })
  bootPcrs = new Map([...q.pcrValues].filter(([i]) => i !== 23))
  lifecycle.on('before-load', async (e) => {
    seen.push('load')
    await onBeforeLoad?.(e)
  })
  lifecycle.on('after-run', async () => {
    await onAfterRun?.()
  })
  lifecycle.on('after-cleanup', () => {
    seen.push('cleanup')
  })
  w = await setupWorld({ components: { attestation: agent, lifecycle } })
  // Any measurement: the request's is per capsule now (ADR 0021), so environment() cannot name it.
  const open = await deployPolicy(w.owner, maxRuns(1000), {
    nodeRegistry: w.addresses.nodeRegistry,
  })
  capsule = await makeCapsule(w, {
    plaintext: jsBundle('digicap.output(digicap.inputText().toUpperCase())', 'attested'),
    runtime: { kind: 'quickjs', entry: 'main.js' },
    policy: open.address,
  })
}, 180_000)

afterAll(async () => {
  await w?.stop()
  await tpm?.stop()
})

async function quoteNow(grantId: Uint8Array, ephemeralPublicKey: Uint8Array) {
  const nonce = bytes()
  const quote = await agent.quote({ nonce, grantId, ephemeralPublicKey })
  return { quote, qualifyingData: quoteBinding({ nonce, grantId, ephemeralPublicKey }) }
}

function verdict(
  phase: Phase,
  { quote, qualifyingData }: { quote: AgentQuote; qualifyingData: Uint8Array },
  more: { grant?: GrantMeasurement; previous?: QuoteClock; grantId?: Uint8Array } = {},
): string {
  try {
    verifyPhase(quote, {
      phase,
      attestationKey: keys,
      qualifyingData,
      bootPcrs,
      eventLog: quote.eventLog,
      ...(more.grant ? { grant: more.grant } : {}),
      ...(more.previous ? { previous: more.previous } : {}),
      ...(more.grantId ? { cleanup: { report: quote.cleanup, grantId: more.grantId } } : {}),
    })
    return 'ok'
  } catch (err) {
    if (err instanceof DigicapError) return err.code
    throw err
  }
}

describe('a capsule run measured into PCR 23 (real swtpm, anvil, keyguard)', () => {
  it('before, during and after quotes of the run verify; during from the chain’s grant alone', async () => {
    let before: Awaited<ReturnType<typeof quoteNow>> | undefined
    let during: Awaited<ReturnType<typeof quoteNow>> | undefined
    let run: { grantId: Uint8Array; ephemeralPublicKey: Uint8Array } | undefined
    onBeforeLoad = async (e) => {
      run = e.attestation
      before = await quoteNow(e.attestation!.grantId, e.attestation!.ephemeralPublicKey)
    }
    onAfterRun = async () => {
      during = await quoteNow(run!.grantId, run!.ephemeralPublicKey)
    }
    const res = await w.executor.runCapsule(capsule.cid)
    onBeforeLoad = undefined
    onAfterRun = undefined
    expect(new TextDecoder().decode(res.result)).toBe('ATTESTED')
    expect(hexlify(run!.grantId)).toBe(res.grantId)

    // The verifier's view: measurement, grant id and key from AccessGranted, nothing else.
    const [log] = await w.c.accessController.queryFilter(
      w.c.accessController.filters.AccessGranted!(res.grantId),
    )
    const args = (log as unknown as { args: { ephemeralKey: string; measurement: string } }).args
    const grant: GrantMeasurement = {
      measurement: getBytes(args.measurement),
      grantId: getBytes(res.grantId),
      ephemeralPublicKey: getBytes(args.ephemeralKey),
    }
    expect(verdict('before', before!)).toBe('ok')
    expect(verdict('during', during!, { grant })).toBe('ok')
    // the old self-declared environment measurement is not what this grant was made for
    expect(verdict('during', during!, { grant: { ...grant, measurement: w.measurement } })).toBe(
      'QUOTE_RUN_PCR',
    )
    const after = await quoteNow(grant.grantId, grant.ephemeralPublicKey)
    const previous = parseQuoteAttest(before!.quote.attest).clockInfo
    expect(after.quote.cleanup).toMatchObject({ workspaceRemoved: true, keyBuffersWiped: true })
    expect(verdict('after', after, { previous, grantId: grant.grantId })).toBe('ok')
    expect(verdict('after', after, { previous, grantId: bytes() })).toBe('QUOTE_CLEANUP')
    expect(await agent.readRunPcr()).toEqual(new Uint8Array(32))
  }, 120_000)

  it('concurrent runs take turns on the one PCR 23, and a full queue is a typed error', async () => {
    seen.length = 0
    const [a, b] = await Promise.all([
      w.executor.runCapsule(capsule.cid),
      w.executor.runCapsule(capsule.cid),
    ])
    expect(a.grantId).not.toBe(b.grantId)
    // one run loaded, ran and cleaned up (PCR 23 reset) before the other loaded
    expect(seen).toEqual(['load', 'cleanup', 'load', 'cleanup'])

    const turns = createRunTurns(agent, { maxWaiting: 1 })
    const first = await turns.take()
    const second = turns.take()
    await expect(turns.take()).rejects.toMatchObject({ code: 'RUN_QUEUE_FULL' })
    first.release()
    const third = await second
    // a waiting run that is aborted leaves the queue
    const aborted = new AbortController()
    const waiting = turns.take(aborted.signal)
    expect(turns.waiting()).toBe(1)
    aborted.abort()
    await expect(waiting).rejects.toMatchObject({ code: 'SANDBOX_ABORTED' })
    expect(turns.waiting()).toBe(0)
    third.release()
    ;(await turns.take()).release()
  }, 180_000)

  it('a run killed mid-way leaves PCR 23 measured; every run refuses until it is reset', async () => {
    const script = new URL('./scripts/killed-measured-run.ts', import.meta.url).pathname
    const child = spawn(process.execPath, [script, tpm.tcti], { stdio: ['ignore', 'pipe', 'pipe'] })
    let err = ''
    child.stderr.on('data', (d) => {
      err += String(d)
    })
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d) => {
        if (String(d).includes('measured')) resolve()
      })
      child.on('exit', (code) => reject(new Error(`child exited ${code}: ${err}`)))
    })
    child.kill('SIGKILL')
    await new Promise((r) => child.once('exit', r))

    expect(await agent.readRunPcr()).not.toEqual(new Uint8Array(32))
    // the keyguard's before-check would refuse this TPM too
    expect(verdict('before', await quoteNow(bytes(), bytes()))).toBe('QUOTE_EVENT_LOG')
    await expect(w.executor.runCapsule(capsule.cid)).rejects.toMatchObject({
      code: 'RUN_PCR_NOT_RESET',
    })
    await expect(w.executor.runCapsule(capsule.cid)).rejects.toMatchObject({
      code: 'RUN_PCR_NOT_RESET',
    })
    await agent.resetRunPcr()
    const res = await w.executor.runCapsule(capsule.cid)
    expect(new TextDecoder().decode(res.result)).toBe('ATTESTED')
  }, 120_000)

  it('the clean-up statement is checked, not assumed; a runtime other than the declared one is never measured', async () => {
    const sandbox = quickjsSandbox()
    const runtime = {
      kind: 'quickjs',
      entry: 'main.js',
      memoryLimitBytes: 1 << 24,
      timeLimitMs: 5000,
    } as const
    const job = () => ({
      runtime,
      code: new TextEncoder().encode('digicap.output("x")'),
      input: new Uint8Array(0),
    })
    const values = {
      runtimeDigest: runtimeDigest(sandbox.runtimeId, runtime),
      capsuleHeaderHash: bytes(),
      grantId: bytes(),
      ephemeralPublicKey: bytes(),
    }
    // a key buffer the workspace never tracked: clean-up cannot have wiped it, and says so
    const leaked = bytes()
    const ran = await runInSandbox({
      sandbox,
      job: job(),
      measure: { agent, values, keyBuffers: [leaked] },
    })
    expect(ran.attestation).toMatchObject({ workspaceRemoved: true, keyBuffersWiped: false })
    expect(await agent.readRunPcr()).toEqual(new Uint8Array(32))
    const after = await quoteNow(values.grantId, values.ephemeralPublicKey)
    // the after verdict needs an earlier clock of this boot: the quote's own will do here
    const previous = parseQuoteAttest(after.quote.attest).clockInfo
    expect(verdict('after', after, { previous, grantId: values.grantId })).toBe('QUOTE_CLEANUP')

    // the request declared another runtime (digest): refused before PCR 23 is touched
    await expect(
      runInSandbox({
        sandbox,
        job: job(),
        measure: { agent, values: { ...values, runtimeDigest: bytes() }, keyBuffers: [] },
      }),
    ).rejects.toMatchObject({ code: 'SANDBOX_LIFECYCLE' })
    expect(await agent.readRunPcr()).toEqual(new Uint8Array(32))
    await sandbox.close()
  }, 60_000)
})
