/**
 * The chain path's `attested()` with a committee (ADR 0033), on real parts: anvil with Digicap
 * (the AttestationHub from deployDigicap), four registered verifiers seated from real VRF
 * tickets, the keyguard's tpm2 sealer on a swtpm (every unwrap counted), libp2p on loopback.
 * Before certificates are made with the committee package's vote signing and certificate
 * builders, with the verifiers' keys. The keyguard reads the hub through its chain client, two
 * blocks deep:
 * - no certificate: the grant is held, nothing unwrapped;
 * - another job's pass does not release this one;
 * - a pass that a reorg removes before it is two blocks deep never releases;
 * - a pass two blocks deep releases (once);
 * - a fail refuses the grant for good.
 */
import { privateKeySigner } from '@digicap/capsule-core'
import {
  BEFORE_FAIL,
  BEFORE_PASS,
  beforeCertificateCall,
  beforeRoundId,
  buildCertificate,
  drawTicket,
  jobSeed,
  pbftCommittee,
  pbftDomain,
  signVote,
} from '@digicap/committee'
import { attested, connectSettlement } from '@digicap/contracts'
import { deployPolicy } from '@digicap/contracts/compiler'
import { onchainProof } from '@digicap/vrf'
import { getBytes, hexlify, randomBytes, type Wallet, ZeroHash } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  AwaitingVerdictError,
  committeeGate,
  NotAttestedError,
  type ReleaseEvent,
  tpm2Sealer,
} from '../src/index.ts'
import { type KeyguardWorld, keyguardWorld } from './helpers/keyguard-world.ts'
import {
  chainClientFor,
  instrumented,
  MIN_STAKE,
  quietLogger,
  registerCapsule,
  send,
  storeKey,
  until,
} from './helpers/world.ts'

const CONFIRMATIONS = 2
const POLL_MS = 150
/** deployDigicap's default sortition window (blocks). */
const SORTITION_WINDOW = 20

let w: KeyguardWorld
let sealer: ReturnType<typeof instrumented>
let capsule: string
let verifiers: Wallet[]

beforeAll(async () => {
  w = await keyguardWorld({
    swtpm: true,
    capsules: 0,
    keyguardDialsExecutor: true,
    sealer: (swtpm) => {
      sealer = instrumented(
        tpm2Sealer({ tcti: swtpm!.tcti, createIfMissing: true, logger: quietLogger }),
      )
      return sealer
    },
    keyguard: {
      confirmations: CONFIRMATIONS,
      pollIntervalMs: POLL_MS,
      committee: { verdictPollMs: POLL_MS },
    },
    events: ['released', 'grant-refused', 'release-failed', 'grant-held'],
    prepare: async (world) => {
      const { chain } = world
      verifiers = (chain.anvil.signers as Wallet[]).slice(4, 8)
      for (const v of verifiers)
        await send(
          chain.c.nodeRegistry
            .connect(v)
            .register(hexlify(randomBytes(38)), ZeroHash, 2, { value: MIN_STAKE }),
        )
      const policy = await deployPolicy(chain.owner, attested(), {
        nodeRegistry: chain.addresses.nodeRegistry,
      })
      capsule = await registerCapsule(chain, world.kgNode, policy.address)
      world.dataKeys.set(capsule, getBytes(hexlify(randomBytes(32))))
      await storeKey(world.parts, capsule, world.dataKeys.get(capsule)!)
    },
  })
}, 120_000)
afterAll(() => w?.stop())

const hub = () => connectSettlement(w.chain.addresses, w.chain.deployer)
const mine = (n: number) => w.chain.anvil.provider.send('anvil_mine', [`0x${n.toString(16)}`])
const domain = () => pbftDomain(BigInt(w.chain.addresses.chainId), w.chain.addresses.attestationHub)
const events = (grantId: string, type?: ReleaseEvent['type']) =>
  (w.events as ReleaseEvent[]).filter(
    (e) => 'grantId' in e && e.grantId === grantId && (type === undefined || e.type === type),
  )
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms))

/**
 * Sends and polls for the receipt (anvil mines on send): ethers' `wait()` rides its block
 * subscriber, which stalls after `anvil_mine` jumps.
 */
async function sent(tx: Promise<{ hash: string }>): Promise<number> {
  const { hash } = await tx
  for (let i = 0; i < 3000; i++) {
    const receipt = await w.chain.anvil.provider.getTransactionReceipt(hash)
    if (receipt) {
      if (receipt.status !== 1) throw new Error(`transaction ${hash} reverted`)
      return receipt.blockNumber
    }
    await pause(10)
  }
  throw new Error(`no receipt for ${hash}`)
}

/** A chain-path grant on the attested capsule, its job opened and a committee seated. */
async function seatedJob(): Promise<{ grantId: string; committee: `0x${string}`[] }> {
  const ac = w.chain.c.accessController.connect(
    w.chain.executor,
  ) as typeof w.chain.c.accessController
  const args = [capsule, w.exec.newEphemeral(), w.chain.measurement, '0x'] as const
  const grantId = (await ac.requestAccess.staticCall(...args)).toLowerCase()
  await sent(ac.requestAccess(...args))
  const { attestationHub, committeeSortition } = hub()
  const opened = await sent(attestationHub.openJob(grantId))
  await mine(1)
  const block = await w.chain.anvil.provider.getBlock(opened)
  const seed = jobSeed(getBytes(grantId), getBytes(block!.hash!))
  for (const v of verifiers) {
    const ticket = drawTicket(getBytes(v.privateKey), seed)
    const args = onchainProof(ticket.publicKey, seed, ticket.proof)
    await sent(
      (committeeSortition.connect(v) as typeof committeeSortition).submitTicket(
        grantId,
        args.publicKey as never,
        args.proof as never,
      ),
    )
  }
  await mine(SORTITION_WINDOW)
  const committee = [...(await attestationHub.seatCommittee.staticCall(grantId))]
  await sent(attestationHub.seatCommittee(grantId))
  await mine(CONFIRMATIONS)
  return { grantId, committee: committee as `0x${string}`[] }
}

/** The committee's before certificate (3 of 4 commits), submitted; the block it landed in. */
async function before(grantId: string, committee: `0x${string}`[], verdict: number) {
  const round = beforeRoundId(getBytes(grantId))
  const members = pbftCommittee(
    verifiers.map((v) => ({ address: v.address as `0x${string}`, peerId: v.address })),
  )
  const evidenceHash = getBytes(hexlify(randomBytes(32)))
  const commits = await Promise.all(
    verifiers.slice(0, 3).map(async (v) => ({
      signer: v.address as `0x${string}`,
      vote: await signVote(privateKeySigner(getBytes(v.privateKey)), domain(), {
        phase: 'commit',
        jobId: round,
        view: 0n,
        preparedView: 0n,
        verdict,
        evidenceHash,
      }),
    })),
  )
  const call = beforeCertificateCall(
    getBytes(grantId),
    buildCertificate(domain(), members, commits),
    committee,
  )
  const { attestationHub } = hub()
  return sent(
    attestationHub.submitBeforeCertificate(
      call.jobId,
      call.value,
      call.signerBits,
      call.others,
      call.signatures,
    ),
  )
}

/** The gate's answer for `grantId` at `confirmations` blocks deep, as an error class or 'pass'. */
async function gateSays(grantId: string, confirmations = CONFIRMATIONS) {
  const gate = committeeGate({ confirmations })({ chain: chainClientFor(w.chain) })
  try {
    await gate.verdict(grantId)
    return 'pass'
  } catch (err) {
    if (err instanceof AwaitingVerdictError || err instanceof NotAttestedError)
      return `${err.code}:${String(err.details.reason)}`
    throw err
  }
}

describe('chain path, attested(): the keyguard waits for the committee’s before verdict', () => {
  let a: { grantId: string; committee: `0x${string}`[] }

  it('holds a grant without a before certificate: no key, no unwrap', async () => {
    a = await seatedJob()
    await until(
      () => events(a.grantId, 'grant-held').some((e) => 'reason' in e && e.reason === 'no-verdict'),
      20_000,
    )
    // Each reason once (no-job or not-seated before the seating was two blocks deep, then no-verdict).
    const reasons = events(a.grantId, 'grant-held').map((e) => ('reason' in e ? e.reason : ''))
    expect(new Set(reasons).size).toBe(reasons.length)
    await pause(POLL_MS * 4)
    expect(w.exec.received.has(a.grantId)).toBe(false)
    expect(events(a.grantId).map((e) => e.type)).not.toContain('released')
    expect(sealer.calls()).toBe(0)
    expect(await gateSays(a.grantId)).toBe('AWAITING_VERDICT:no-verdict')
    expect(await gateSays(hexlify(randomBytes(32)))).toBe('AWAITING_VERDICT:no-job')
  })

  it('does not count another job’s pass', async () => {
    const b = await seatedJob()
    await before(b.grantId, b.committee, BEFORE_PASS)
    await mine(CONFIRMATIONS)
    await until(() => w.exec.received.has(b.grantId), 20_000)
    expect(w.exec.received.get(b.grantId)).toEqual(w.dataKeys.get(capsule))
    await pause(POLL_MS * 4)
    expect(w.exec.received.has(a.grantId)).toBe(false)
    expect(sealer.calls()).toBe(1)
  })

  it('does not release on a pass that a reorg removes before it is confirmed', async () => {
    const snapshot = await w.chain.anvil.snapshot()
    await before(a.grantId, a.committee, BEFORE_PASS)
    await mine(CONFIRMATIONS - 1)
    // At the tip the pass is there; two blocks deep it is not yet.
    expect(await gateSays(a.grantId, 0)).toBe('pass')
    expect(await gateSays(a.grantId)).toBe('AWAITING_VERDICT:no-verdict')
    await pause(POLL_MS * 4)
    // The reorg: the chain goes back before the certificate and grows past it without it.
    await w.chain.anvil.revert(snapshot)
    await mine(CONFIRMATIONS + 3)
    await pause(POLL_MS * 6)
    expect(await gateSays(a.grantId, 0)).toBe('AWAITING_VERDICT:no-verdict')
    expect(w.exec.received.has(a.grantId)).toBe(false)
    expect(sealer.calls()).toBe(1)
  })

  it('releases once the pass is confirmed', async () => {
    await before(a.grantId, a.committee, BEFORE_PASS)
    await mine(CONFIRMATIONS)
    await until(() => w.exec.received.has(a.grantId), 20_000)
    expect(w.exec.received.get(a.grantId)).toEqual(w.dataKeys.get(capsule))
    expect(sealer.calls()).toBe(2)
  })

  it('refuses for good on a fail verdict, with no unwrap', async () => {
    const c = await seatedJob()
    await until(() => events(c.grantId, 'grant-held').length > 0, 20_000)
    await before(c.grantId, c.committee, BEFORE_FAIL)
    await mine(CONFIRMATIONS)
    await until(() => events(c.grantId, 'grant-refused').length > 0, 20_000)
    expect(events(c.grantId, 'grant-refused')).toEqual([
      {
        type: 'grant-refused',
        grantId: c.grantId,
        reason: 'not-attested',
        attestation: 'committee-fail',
      },
    ])
    expect((await w.parts.journal.get(c.grantId))?.state).toBe('refused')
    await pause(POLL_MS * 4)
    expect(w.exec.received.has(c.grantId)).toBe(false)
    expect(sealer.calls()).toBe(2)
    expect(await gateSays(c.grantId)).toBe('NOT_ATTESTED:committee-fail')
  })
})
