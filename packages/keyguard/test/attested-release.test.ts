/**
 * `attested()` enforced by the keyguard, on real parts: anvil with Digicap, a real swtpm behind
 * the executors' attestation agents (`@digicap/attestation/agent`), libp2p on loopback. A
 * capsule whose policy requires attestation is unwrapped — on the fast path and on the chain
 * path — only for an executor whose registered AK answers the keyguard's challenge with a valid
 * before-quote for this grant and key. Every refusal is `not-attested` with ZERO unwraps by the
 * keyguard's tpm2 sealer (its own swtpm; counted):
 * no registered AK, another AK than the registered one, PCR 23 not at its reset value (mid-run),
 * an executor that does not answer, and a TPM reboot since the last accepted quote. A capsule
 * without `attested()` is released with no challenge at all. A node cannot register another
 * node's record (NodeRegistry `AttestationKeyTaken`), so it cannot relay the keyguard's
 * challenges to that node's TPM.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  type AttestationRecord,
  attestationRecordHash,
  encodeAttestationRecord,
} from '@digicap/attestation'
import {
  type AttestationAgent,
  createAttestationAgent,
  serveAttestation,
} from '@digicap/attestation/agent'
import { decodeHpkeSealed, hpkeOpen } from '@digicap/capsule-core'
import { any, attested, decodeRevert, maxRuns } from '@digicap/contracts'
import { deployPolicy } from '@digicap/contracts/compiler'
import {
  type AccessRequest,
  type AccessResponse,
  attestProtocol,
  fastPathProtocol,
  handle,
  request,
} from '@digicap/protocol'
import { hexlify, randomBytes, type Wallet, ZeroHash } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type KeyguardEvent, keyReleaser, tpm2Sealer } from '../src/index.ts'
import { type Swtpm, startSwtpm } from '../src/testing.ts'
import { type KeyguardWorld, keyguardWorld } from './helpers/keyguard-world.ts'
import {
  chainClientFor,
  type ExecutorSide,
  executorSide,
  instrumented,
  MIN_STAKE,
  quietLogger,
  registerCapsule,
  requestAccess,
  send,
  storeKey,
  until,
} from './helpers/world.ts'

/** An executor: its wallet, its node (key-release handler), and the quotes its agent made. */
interface Executor {
  wallet: Wallet
  side: ExecutorSide
  quotes: number
  stopAttest?: () => Promise<void>
}

let w: KeyguardWorld
let sealer: ReturnType<typeof instrumented>
let tpm: Swtpm
/** The TPM's state, kept across a power cycle. */
let tpmDir: string
let agent: AttestationAgent
let record: AttestationRecord
/** Capsules: `attested()`, `any(attested(), maxRuns(1000))` (passes on chain without an AK), none. */
const capsules = { attested: '', loose: '', plain: '' }
const dataKeys = new Map<string, Uint8Array>()
const ex = {} as Record<'good' | 'bare' | 'foreign' | 'mute' | 'liar', Executor>
/** Challenges the mute executor took (and never answered). */
let muteChallenges = 0

const rand = (n = 32) => new Uint8Array(randomBytes(n))

async function recordOf(a: AttestationAgent): Promise<AttestationRecord> {
  const keys = await a.provision()
  const q = await a.quote({ nonce: rand(), grantId: rand(), ephemeralPublicKey: rand() })
  return { ...keys, bootPcrs: new Map([...q.pcrValues].filter(([i]) => i !== 23)) }
}

/**
 * Serves `/digicap/attest/1.0.0` on the executor's node with `a`, counting its quotes; the
 * credential activation (once per record hash) is answered by `activator`, the TPM holding
 * `rec`'s AK.
 */
async function serveWith(
  e: Executor,
  a: AttestationAgent,
  rec: AttestationRecord,
  activator: AttestationAgent = agent,
) {
  await e.stopAttest?.()
  e.stopAttest = await serveAttestation(
    e.side.node,
    {
      quote: (binding) => {
        e.quotes++
        return a.quote(binding)
      },
      activateCredential: (c) => activator.activateCredential(c),
    },
    { record: encodeAttestationRecord(rec) },
  )
}

async function executor(wallet: Wallet, hash: string): Promise<Executor> {
  const side = await executorSide()
  w.defer('executor', () => side.stop())
  await send(
    w.chain.c.nodeRegistry
      .connect(wallet)
      .register(side.node.peerId.toMultihash().bytes, hash, 1, { value: MIN_STAKE }),
  )
  await side.node.peerStore.merge(w.kgNode.peerId, { multiaddrs: w.kgNode.getMultiaddrs() })
  await w.kgNode.peerStore.merge(side.node.peerId, { multiaddrs: side.node.getMultiaddrs() })
  return { wallet, side, quotes: 0 }
}

beforeAll(async () => {
  // The keyguard's own TPM (the world's swtpm, its tpm2 sealer): every unwrap counted is a
  // TPM2_RSA_Decrypt. Executors, capsules and policies are this file's; the keyguard starts last.
  w = await keyguardWorld({
    swtpm: true,
    sealer: (sealerTpm: Swtpm | undefined) =>
      (sealer = instrumented(
        tpm2Sealer({ tcti: (sealerTpm as Swtpm).tcti, createIfMissing: true, logger: quietLogger }),
      )),
    executors: 0,
    capsules: 0,
    keyguard: {
      pollIntervalMs: 100,
      fastPath: { enabled: true, maxExpirySeconds: 300 },
      // The first challenge of a record also activates its AK (TPM2_ActivateCredential): room
      // for both on a loaded machine; a mute executor is challenged twice on the chain path.
      attestation: { timeoutMs: 4000, attempts: 2 },
    },
    start: false,
    events: ['released', 'grant-refused', 'release-failed', 'fast-path-refused', 'grant-held'],
  })
  tpmDir = await mkdtemp(join(tmpdir(), 'kg-attest-tpm-'))
  w.defer('executors TPM state', () => rm(tpmDir, { recursive: true, force: true }))
  tpm = await startSwtpm({ stateDir: tpmDir })
  // The TPM in use when the file ends (a test power-cycles it).
  w.defer('executors TPM', () => tpm.stop())
  agent = createAttestationAgent({ tcti: tpm.tcti })
  await agent.resetRunPcr()
  record = await recordOf(agent)
  const other = createAttestationAgent({ tcti: tpm.tcti, akHandle: 0x81010011 })
  const otherRecord = await recordOf(other)
  const foreignAgent = createAttestationAgent({ tcti: tpm.tcti, akHandle: 0x81010012 })
  const foreignRecord = await recordOf(foreignAgent)
  const registered = hexlify(attestationRecordHash(record))
  const signers = w.chain.anvil.signers as Wallet[]
  ex.good = await executor(w.chain.executor, registered)
  ex.bare = await executor(w.chain.other, ZeroHash)
  ex.foreign = await executor(signers[4] as Wallet, hexlify(attestationRecordHash(foreignRecord)))
  ex.mute = await executor(signers[5] as Wallet, hexlify(rand()))
  ex.liar = await executor(signers[6] as Wallet, hexlify(rand()))
  await serveWith(ex.good, agent, record)
  // Its registered record (activated by its AK), but quotes made with another AK of the TPM.
  await serveWith(ex.foreign, other, foreignRecord, foreignAgent)
  // Quotes with another AK and sends that AK's record, which is not the registered one.
  await serveWith(ex.liar, other, otherRecord, other)
  // Takes the challenge and never answers.
  await handle(
    ex.mute.side.node,
    attestProtocol,
    () => {
      muteChallenges++
      return new Promise<never>(() => {})
    },
    { timeout: 60_000 },
  )

  const policies: string[] = []
  for (const rule of [attested(), any(attested(), maxRuns(1000))]) {
    const p = await deployPolicy(w.chain.owner, rule, {
      nodeRegistry: w.chain.addresses.nodeRegistry,
    })
    policies.push(p.address)
  }
  capsules.attested = await registerCapsule(w.chain, w.kgNode, policies[0])
  capsules.loose = await registerCapsule(w.chain, w.kgNode, policies[1])
  capsules.plain = await registerCapsule(w.chain, w.kgNode)
  for (const capsuleId of Object.values(capsules)) {
    const key = rand()
    dataKeys.set(capsuleId, key)
    await storeKey(w.parts, capsuleId, key)
  }
  await w.keyguard.start()
  // Stopped first, before the executors and their TPM.
  w.defer('keyguard', () => w.keyguard.stop())
}, 120_000)

afterAll(() => w?.stop())

const signed = (e: Executor, capsuleId: string): AccessRequest =>
  w.signed({ capsuleId, signer: e.wallet, side: e.side })

const fastPath = (e: Executor, req: AccessRequest): Promise<AccessResponse> =>
  request(e.side.node, w.kgNode.peerId, fastPathProtocol, req, { timeout: 20_000 })

/** The executor gets the capsule's data key inline, sealed to its ephemeral key. */
async function expectGranted(e: Executor, capsuleId: string): Promise<void> {
  const req = signed(e, capsuleId)
  const res = await fastPath(e, req)
  if (res.status !== 'granted' || res.keyRelease === undefined) {
    throw new Error(`not granted: ${JSON.stringify(res)}`)
  }
  const priv = e.side.keys.get(hexlify(req.ephemeralKey)) as Uint8Array
  const key = await hpkeOpen(priv, decodeHpkeSealed(res.keyRelease.hpke), res.grantId)
  expect(key).toEqual(dataKeys.get(capsuleId))
}

/** Refused `not-attested` with `reason`, and the sealer never ran. */
async function expectNotAttested(e: Executor, capsuleId: string, reason: string): Promise<void> {
  const before = sealer.calls()
  const res = await fastPath(e, signed(e, capsuleId))
  expect(res).toEqual({ status: 'refused', reasonCode: 'not-attested', reason })
  expect(sealer.calls() - before).toBe(0)
}

/** A chain-path grant; resolves with the keyguard's verdict event for it. */
async function chainGrant(e: Executor, capsuleId: string) {
  const ephemeral = e.side.newEphemeral()
  const grantId = await requestAccess(w.chain, capsuleId, ephemeral, e.wallet)
  let verdict: KeyguardEvent | undefined
  await until(() => {
    verdict = w.events.find(
      (v) =>
        'grantId' in v &&
        v.grantId === grantId &&
        (v.type === 'released' || v.type === 'grant-refused' || v.type === 'release-failed'),
    )
    return verdict !== undefined
  }, 30_000)
  return { grantId, verdict: verdict as KeyguardEvent }
}

describe('attested() on the fast path', () => {
  it('releases to the executor whose registered AK quotes a clean PCR 23, after one challenge', async () => {
    const [quotes, unwraps] = [ex.good.quotes, sealer.calls()]
    await expectGranted(ex.good, capsules.attested)
    expect(ex.good.quotes - quotes).toBe(1)
    expect(sealer.calls() - unwraps).toBe(1)
  })

  it('refuses, with zero unwraps, an executor with no registered AK', async () => {
    // the policy's own attested() condition says so on chain ...
    await expectNotAttested(ex.bare, capsules.attested, 'unregistered')
    // ... and the keyguard says so itself where the policy lets it through on chain
    await expectNotAttested(ex.bare, capsules.loose, 'unregistered')
  })

  it('refuses, with zero unwraps, an executor quoting with another AK than the registered one', async () => {
    const quotes = ex.foreign.quotes
    await expectNotAttested(ex.foreign, capsules.attested, 'evidence:QUOTE_SIGNER')
    expect(ex.foreign.quotes - quotes).toBe(1)
  })

  it('refuses, with zero unwraps, an executor whose record is not the registered one', async () => {
    await expectNotAttested(ex.liar, capsules.attested, 'record-mismatch')
  })

  it('refuses, with zero unwraps, an executor in the middle of a run (PCR 23 extended)', async () => {
    await agent.beginRun({
      runtimeDigest: rand(),
      capsuleHeaderHash: rand(),
      grantId: rand(),
      ephemeralPublicKey: rand(),
    })
    try {
      await expectNotAttested(ex.good, capsules.attested, 'evidence:QUOTE_RUN_PCR')
    } finally {
      await agent.endRun({ grantId: rand(), workspaceRemoved: true, keyBuffersWiped: true })
    }
    // back at its reset value: released again
    await expectGranted(ex.good, capsules.attested)
  })

  it('refuses, with zero unwraps, an executor that does not answer the challenge', async () => {
    const started = performance.now()
    await expectNotAttested(ex.mute, capsules.attested, 'unreachable')
    // the keyguard's challenge time limit (4 s), not the exchange's (20 s)
    expect(performance.now() - started).toBeLessThan(15_000)
  })

  it('a mute executor holds only its own request: another executor of the capsule is released meanwhile', async () => {
    // Its challenge used to run under the capsule's lock: every request for the capsule waited
    // out the challenge's time limit (4 s here) behind it.
    const [challenged, unwraps] = [muteChallenges, sealer.calls()]
    const done: string[] = []
    const mute = fastPath(ex.mute, signed(ex.mute, capsules.attested)).then((res) => {
      done.push('mute')
      return res
    })
    await until(() => muteChallenges > challenged, 20_000)
    await expectGranted(ex.good, capsules.attested)
    done.push('good')
    expect(await mute).toEqual({
      status: 'refused',
      reasonCode: 'not-attested',
      reason: 'unreachable',
    })
    expect(done).toEqual(['good', 'mute'])
    expect(sealer.calls() - unwraps).toBe(1)
  })

  it('releases a capsule without attested() with no challenge at all', async () => {
    const quotes = Object.values(ex).map((e) => e.quotes)
    await expectGranted(ex.good, capsules.plain)
    // the mute executor has no agent: its request would hang on a challenge, and gets none
    await expectGranted(ex.mute, capsules.plain)
    expect(Object.values(ex).map((e) => e.quotes)).toEqual(quotes)
  })
})

describe("a relay of another node's challenges", () => {
  it("cannot register the attested node's record: NodeRegistry names it AttestationKeyTaken", async () => {
    // Were it registered, this node would pass every challenge by forwarding it to `ex.good`'s
    // agent, whose quotes are genuine for that record.
    const relay = w.chain.anvil.signers[7] as Wallet
    const side = await executorSide()
    try {
      const registering = w.chain.c.nodeRegistry
        .connect(relay)
        .register(side.node.peerId.toMultihash().bytes, attestationRecordHash(record), 1, {
          value: MIN_STAKE,
        })
      const err = decodeRevert(
        await registering.then(
          () => undefined,
          (e: unknown) => e,
        ),
      )
      expect(err).toMatchObject({
        errorName: 'AttestationKeyTaken',
        args: [hexlify(attestationRecordHash(record)), w.chain.executor.address],
      })
      expect(await chainClientFor(w.chain).attestationKeyHash(relay.address)).toBe(ZeroHash)
    } finally {
      await side.stop()
    }
  })
})

describe('attested() on the chain path', () => {
  it('releases to the attested executor and journals the grant completed', async () => {
    const [quotes, unwraps] = [ex.good.quotes, sealer.calls()]
    const { grantId, verdict } = await chainGrant(ex.good, capsules.attested)
    expect(verdict.type).toBe('released')
    expect(ex.good.side.received.get(grantId)).toEqual(dataKeys.get(capsules.attested))
    expect(ex.good.quotes - quotes).toBe(1)
    expect(sealer.calls() - unwraps).toBe(1)
    expect((await w.parts.journal.get(grantId))?.state).toBe('completed')
  })

  it('refuses each unattested executor with zero unwraps, journals the grant refused, and never retries it', async () => {
    const unwraps = sealer.calls()
    const cases: [Executor, string, string][] = [
      [ex.bare, capsules.loose, 'unregistered'],
      [ex.foreign, capsules.attested, 'evidence:QUOTE_SIGNER'],
    ]
    const refused: string[] = []
    for (const [e, capsuleId, why] of cases) {
      const { grantId, verdict } = await chainGrant(e, capsuleId)
      expect(verdict).toEqual({
        type: 'grant-refused',
        grantId,
        reason: 'not-attested',
        attestation: why,
      })
      expect(e.side.releases.map((r) => hexlify(r.grantId))).not.toContain(grantId)
      expect(await w.parts.journal.get(grantId)).toMatchObject({
        state: 'refused',
        reason: `not-attested ${why}`,
      })
      refused.push(grantId)
    }
    // mid-run
    await agent.beginRun({
      runtimeDigest: rand(),
      capsuleHeaderHash: rand(),
      grantId: rand(),
      ephemeralPublicKey: rand(),
    })
    try {
      const { grantId, verdict } = await chainGrant(ex.good, capsules.attested)
      expect(verdict).toMatchObject({
        type: 'grant-refused',
        attestation: 'evidence:QUOTE_RUN_PCR',
      })
      refused.push(grantId)
    } finally {
      await agent.endRun({ grantId: rand(), workspaceRemoved: true, keyBuffersWiped: true })
    }
    expect(sealer.calls() - unwraps).toBe(0)
    // refused for good: nothing pending to resume after a restart ...
    const pending = (await w.parts.journal.pending()).map((p) => p.grantId)
    for (const grantId of refused) expect(pending).not.toContain(grantId)
    // ... and the same logs seen again (a rescan after a restart or a reorg) are refused at
    // once from the journal: no challenge, no unwrap
    const client = chainClientFor(w.chain)
    const logs = (
      await client.grantLogs(w.chain.addresses.deployBlock, await client.blockNumber(), [
        capsules.loose,
        capsules.attested,
      ])
    ).filter((l) => refused.includes(l.grantId))
    expect(logs).toHaveLength(refused.length)
    const again = keyReleaser()({
      sealer,
      keyStore: w.parts.keyStore,
      journal: w.parts.journal,
      chain: client,
      libp2p: w.kgNode,
    })
    const quotes = Object.values(ex).map((e) => e.quotes)
    for (const log of logs) expect(await again.accept(log)).toBe('refused')
    await again.idle()
    expect(await again.resumePending()).toBe(0)
    await again.stop()
    expect(Object.values(ex).map((e) => e.quotes)).toEqual(quotes)
    expect(sealer.calls() - unwraps).toBe(0)
  })

  it('holds, with zero unwraps, the grant of an executor that does not answer, and releases it once it answers', async () => {
    // No answer is no evidence (ADR 0067): the attested executor's endpoint is down for a
    // while (as when a flood turns the keyguard's challenges away), then back.
    const unwraps = sealer.calls()
    await ex.good.stopAttest?.() // serveWith unhandles it again below: a no-op
    const grantId = await requestAccess(
      w.chain,
      capsules.attested,
      ex.good.side.newEphemeral(),
      ex.good.wallet,
    )
    const of = (type: string) =>
      w.events.filter((e) => 'grantId' in e && e.grantId === grantId && e.type === type)
    await until(() => of('grant-held').length > 0, 30_000)
    expect(of('grant-held')).toEqual([{ type: 'grant-held', grantId, reason: 'unreachable' }])
    // Asked again, still held: not refused, nothing unwrapped or journaled as refused.
    await new Promise((r) => setTimeout(r, 3000))
    expect([...of('grant-refused'), ...of('released')]).toEqual([])
    expect(sealer.calls() - unwraps).toBe(0)
    expect((await w.parts.journal.get(grantId))?.state).not.toBe('refused')
    await serveWith(ex.good, agent, record)
    await until(() => of('released').length > 0, 30_000)
    expect(ex.good.side.received.get(grantId)).toEqual(dataKeys.get(capsules.attested))
    expect(sealer.calls() - unwraps).toBe(1)
  })

  it('releases a capsule without attested() with no challenge at all', async () => {
    const quotes = Object.values(ex).map((e) => e.quotes)
    const { grantId, verdict } = await chainGrant(ex.mute, capsules.plain)
    expect(verdict.type).toBe('released')
    expect(ex.mute.side.received.get(grantId)).toEqual(dataKeys.get(capsules.plain))
    expect(Object.values(ex).map((e) => e.quotes)).toEqual(quotes)
  })
})

describe('the last accepted quote clock per executor', () => {
  it('releases again after an honest TPM reboot between two releases (power cycle: a new epoch)', async () => {
    await expectGranted(ex.good, capsules.attested)
    // power loss: the same TPM state comes back with resetCount + 1 and PCR 23 at reset
    await tpm.stop()
    tpm = await startSwtpm({ stateDir: tpmDir })
    agent = createAttestationAgent({ tcti: tpm.tcti })
    await agent.resetRunPcr()
    await serveWith(ex.good, agent, record)
    // before: refused with QUOTE_REBOOT until the executor registered a new record
    await expectGranted(ex.good, capsules.attested)
  })
})
