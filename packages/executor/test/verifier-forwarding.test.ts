/**
 * ADR 0095 on real parts: anvil with the settlement (hub, sortition, registry), an attested
 * executor on a real swtpm whose runs go by the chain path, four verifier nodes on real libp2p
 * over loopback. One seated member (node 3) colludes with the executor: it never votes, and it
 * forwards garbage to the others. The executor withholds one phase's quote from one honest member
 * (node 2). Before ADR 0095 that phase had two signed passes and one fail claim: no verdict was
 * justified, no view decided, the job timed out and the fee was refunded (a free run). Now the
 * honest members forward the answers they verified (the nonce is the hash of a member's signed
 * challenge, checkable by all), node 2 counts one, and the three decide 7 in normal time.
 *
 * The colluder's forwards are refused with the typed reasons: a quote of another phase
 * (`wrong-phase`), a challenge over a block older than the job's watch (`stale`), one signed by
 * a non-member (`non-member`), a second answer for a phase it already used (`held`), another
 * job (`unknown-job`); a stranger's forward is `non-member` before any check.
 */
import {
  attestationRecordHash,
  encodeAttestationRecord,
  requestAttestation,
  toWireEvidence,
} from '@digicap/attestation'
import {
  type AttestationAgent,
  createAttestationAgent,
  serveAttestation,
} from '@digicap/attestation/agent'
import { equalBytes, privateKeySigner, toHex } from '@digicap/capsule-core'
import {
  attestChallengeNonce,
  drawTicket,
  pbftCommittee,
  pbftDomain,
  signAttestChallenge,
} from '@digicap/committee'
import { all, attested, connectSettlement, createProvider, fee } from '@digicap/contracts'
import { deployPolicy } from '@digicap/contracts/compiler'
import { type Swtpm, startSwtpm } from '@digicap/keyguard/testing'
import { createDigicapNode, type DigicapNode } from '@digicap/p2p'
import {
  type AttestForward,
  type AttestPhase,
  attestForwardProtocol,
  request,
} from '@digicap/protocol'
import { onchainProof } from '@digicap/vrf'
import { getBytes, hexlify, parseEther, randomBytes, toQuantity, type Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  ethersVerifierChain,
  type VerifierChain,
  type VerifierEvent,
  type VerifierNode,
  verifierNode,
} from '../src/node/index.ts'
import { hubCommittees } from '../src/node/job-committees.ts'
import { holdPhasesForQuotes } from '../src/node/phase-hold.ts'
import { ForwardRefusedError } from '../src/node/verifier/errors.ts'
import { checkForwardedChallenge, jobForwards } from '../src/node/verifier/forwarding.ts'
import {
  jsBundle,
  type MadeCapsule,
  makeCapsule,
  mineEvery,
  setupWorld,
  type World,
} from './helpers/world.ts'

const STAKE = parseEther('0.01')
const FEE = parseEther('0.01')
const WINDOW = 20
const SEATS = 4

let tpm: Swtpm
let w: World
let committeeReads: VerifierChain | undefined
const committees = hubCommittees({ pollMs: 200 })({
  chain: {
    seats: (jobId) => (committeeReads as VerifierChain).seats(jobId),
    node: (address) => (committeeReads as VerifierChain).node(address),
  },
})
let capsule: MadeCapsule
let nodes: DigicapNode[] = []
let verifiers: VerifierNode[] = []
let wallets: Wallet[] = []
let chains: VerifierChain[] = []
let miner: ReturnType<typeof setInterval> | undefined
let stopWindowMiner: (() => Promise<void>) | undefined
const eventsOf: VerifierEvent[][] = [[], [], []]
/** Fault injection: the executor withholds this phase's quotes from this peer. */
let withhold: { peer: string; phase: AttestPhase } | undefined

/** The phase a quote shows for `grantId` (as the watch classifies it). */
function phaseShown(q: Awaited<ReturnType<AttestationAgent['quote']>>, grantId: Uint8Array) {
  if (q.cleanup !== undefined && equalBytes(q.cleanup.grantId, grantId)) return 'after'
  return (q.eventLog.at(-1)?.kind ?? 'reset') !== 'reset' ? 'during' : 'before'
}

/** The executor's agent, but for `withhold`: that member's quotes of that phase fail. */
function withholding(agent: AttestationAgent): AttestationAgent {
  return {
    ...agent,
    quote: async (binding, from) => {
      const q = await agent.quote(binding, from)
      if (
        withhold !== undefined &&
        from?.peer === withhold.peer &&
        phaseShown(q, binding.grantId) === withhold.phase
      ) {
        throw new Error('withheld (test fault)')
      }
      return q
    },
  }
}

beforeAll(async () => {
  tpm = await startSwtpm()
  const agent = createAttestationAgent({ tcti: tpm.tcti })
  const holding = holdPhasesForQuotes(withholding(agent), 30_000, {
    challengers: SEATS,
    graceMs: 2000,
    committees,
  })
  const keys = await agent.provision()
  await agent.resetRunPcr()
  const q = await agent.quote({
    nonce: randomBytes(32),
    grantId: randomBytes(32),
    ephemeralPublicKey: randomBytes(32),
  })
  const record = { ...keys, bootPcrs: new Map([...q.pcrValues].filter(([i]) => i !== 23)) }
  const recordBytes = encodeAttestationRecord(record)
  w = await setupWorld({
    fastPath: false,
    executor: { maxReleaseWaitMs: 60_000 },
    components: {
      attestation: holding.run,
      watchCommittee: (grantId) => committees.watch(grantId),
    },
    settlement: {
      seats: SEATS,
      sortitionWindow: WINDOW,
      certificateBlocks: 600,
      verifierBps: 2000,
      executorBps: 1000,
      failSlash: parseEther('0.004'),
    },
    committee: { verdictPollMs: 200 },
  })
  const provider = () => createProvider(w.anvil.rpcUrl, BigInt(w.addresses.chainId))
  committeeReads = ethersVerifierChain({
    addresses: w.addresses,
    settlement: w.addresses,
    runner: provider(),
  })
  await serveAttestation(w.exec.libp2p, holding.served, {
    record: recordBytes,
    trustedChallengers: (peer) => committees.trusts(peer),
  })
  await (
    await w.c.nodeRegistry
      .connect(w.executorWallet)
      .update(w.exec.libp2p.peerId.toMultihash().bytes, hexlify(attestationRecordHash(record)), 1)
  ).wait()
  const policy = await deployPolicy(w.owner, all(attested(), fee('0.01')), {
    nodeRegistry: w.addresses.nodeRegistry,
  })
  capsule = await makeCapsule(w, {
    plaintext: jsBundle('digicap.output(digicap.inputText().toUpperCase())', 'forwarding'),
    runtime: { kind: 'quickjs', entry: 'main.js' },
    policy: policy.address,
  })
  const signers = w.anvil.signers as Wallet[]
  wallets = [4, 6, 7, 8].map((i) => (signers[i] as Wallet).connect(provider()))
  nodes = await Promise.all(wallets.map(() => createDigicapNode()))
  await Promise.all(
    nodes.map(async (node, i) => {
      await (
        await w.c.nodeRegistry
          .connect(wallets[i] as Wallet)
          .register(node.libp2p.peerId.toMultihash().bytes, `0x${'00'.repeat(32)}`, 2, {
            value: STAKE,
          })
      ).wait()
    }),
  )
  await Promise.all(
    nodes.flatMap((node, i) =>
      [...nodes.slice(0, i), w.exec].map((other) =>
        node.libp2p.dial(other.libp2p.getMultiaddrs()[0]!),
      ),
    ),
  )
  chains = wallets.map((wallet) =>
    ethersVerifierChain({ addresses: w.addresses, settlement: w.addresses, runner: wallet }),
  )
  // Nodes 0–2 are honest verifiers; node 3 is the colluder (no verifier: it never votes).
  verifiers = [0, 1, 2].map((i) =>
    verifierNode({
      pollMs: 200,
      challengeEveryMs: 250,
      viewTimeoutMs: 2000,
      backupMs: 2500,
      watchMs: 30_000,
      // Well below the test's limit: without a verdict the job fails here, not by the timeout.
      decideMs: 25_000,
    })({
      libp2p: (nodes[i] as DigicapNode).libp2p,
      chain: chains[i] as VerifierChain,
      signer: privateKeySigner((wallets[i] as Wallet).privateKey as `0x${string}`),
      vrfKey: getBytes((wallets[i] as Wallet).privateKey),
      onEvent: (e) => {
        eventsOf[i]?.push(e)
        if (process.env.DEBUG_VERIFIER)
          console.log(i, Date.now() % 100_000, JSON.stringify(e, printable))
      },
    }),
  )
  await Promise.all(verifiers.map((v) => v.start()))
  miner = mineEvery(w)
  stopWindowMiner = mineWindowsOnceSeated(chains[0] as VerifierChain)
}, 120_000)

afterAll(async () => {
  clearInterval(miner)
  await stopWindowMiner?.()
  await Promise.all(verifiers.map((v) => v.stop()))
  await Promise.all(nodes.map((n) => n.stop()))
  await w?.stop()
  await tpm?.stop()
})

const printable = (_: string, v: unknown) =>
  typeof v === 'bigint' ? String(v) : v instanceof Error ? v.message : v
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Once every seat of an open job is taken, mines the rest of its sortition window at once. */
function mineWindowsOnceSeated(chain: VerifierChain): () => Promise<void> {
  let stopped = false
  const loop = (async () => {
    let from = await chain.blockNumber()
    const open = new Map<string, Uint8Array>()
    while (!stopped) {
      try {
        const head = await chain.blockNumber()
        for (const job of await chain.openedJobs(from, head)) open.set(toHex(job.jobId), job.jobId)
        from = head + 1
        for (const [id, jobId] of open) {
          const { members, closed } = await chain.seats(jobId)
          if (closed) open.delete(id)
          if (closed || members.length < SEATS) continue
          const rest = (await chain.sortition(jobId)).lastBlock + 1 - (await chain.blockNumber())
          if (rest > 0) await w.anvil.provider.send('anvil_mine', [toQuantity(rest)])
          open.delete(id)
        }
      } catch {
        // the next pass reads again
      }
      await sleep(150)
    }
  })()
  return async () => {
    stopped = true
    await loop
  }
}

async function until<T>(read: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms
  for (;;) {
    const v = await read().catch(() => undefined)
    if (v !== undefined) return v
    if (Date.now() > end) throw new Error('until: timed out')
    await sleep(100)
  }
}

/**
 * The colluder (node 3): sends its VRF ticket for the next job (seated: four tickets, four
 * seats), then, once the committee is seated, forwards garbage to node 2. Resolves with the
 * statuses node 2 answered, by case.
 */
async function colluder(
  garbage = true,
): Promise<{ grantId: string; statuses: Record<string, string> }> {
  const chain = chains[3] as VerifierChain
  const wallet = wallets[3] as Wallet
  const from = await chain.blockNumber()
  const job = await until(async () => (await chain.openedJobs(from, await chain.blockNumber()))[0])
  const { seed, grantBlock, lastBlock } = await until(() => chain.sortition(job.jobId))
  const t = drawTicket(getBytes(wallet.privateKey), seed)
  await chain.submitTicket(job.jobId, onchainProof(t.publicKey, seed, t.proof))
  await until(async () => ((await chain.status(job.jobId)) === 'seated' ? true : undefined))
  if (!garbage) return { grantId: toHex(job.jobId), statuses: {} }
  const domain = pbftDomain(chain.chainId, chain.hub)
  const grant = await chain.grant(job.jobId)
  const me = privateKeySigner(wallet.privateKey as `0x${string}`)
  const fresh = async (signer = me) =>
    signAttestChallenge(signer, domain, {
      jobId: job.jobId,
      blockHash: (await (chain.head as NonNullable<VerifierChain['head']>)()).hash,
      seq: BigInt(Date.now()),
    })
  const target = (nodes[2] as DigicapNode).libp2p.peerId
  /** Sends until node 2 has a watch of the job (it answers `unknown-job` before). */
  const send = async (message: AttestForward, sender = nodes[3] as DigicapNode) => {
    for (let i = 0; ; i++) {
      const { status } = await request(sender.libp2p, target, attestForwardProtocol, message, {
        timeout: 5000,
      })
      if (status !== 'unknown-job' || i > 100) return status
      await sleep(200)
    }
  }
  // A real quote of the executor over the colluder's own signed challenge, taken in the before
  // phase: forwarded as the during phase's (the watch's phase rules see through it).
  const executorPeer = w.exec.libp2p.peerId
  const signed = await fresh()
  const response = await requestAttestation(nodes[3]!.libp2p, executorPeer, {
    grantId: job.jobId,
    ephemeralKey: grant.ephemeralKey,
    nonce: attestChallengeNonce(signed.signature),
  })
  const evidence = toWireEvidence({
    ...response.quote,
    eventLog: response.eventLog,
    ...(response.cleanup === undefined ? {} : { cleanup: response.cleanup }),
  })
  const forward = (s: typeof signed, phase: AttestPhase): AttestForward => ({
    jobId: s.jobId,
    blockHash: s.blockHash,
    seq: s.seq,
    challengeSignature: s.signature,
    phase,
    evidence,
  })
  const statuses: Record<string, string> = {}
  statuses.wrongPhase = await send(forward(signed, 'during'))
  // A block before the job's watch: the grant's block, before the sortition window closed.
  expect(grantBlock).toBeLessThan(lastBlock)
  const old = await w.anvil.provider.getBlock(grantBlock)
  statuses.stale = await send(
    forward(
      await signAttestChallenge(me, domain, {
        jobId: job.jobId,
        blockHash: getBytes(old!.hash!),
        seq: 1n,
      }),
      'before',
    ),
  )
  statuses.nonMember = await send(
    forward(await fresh(privateKeySigner(hexlify(randomBytes(32)) as `0x${string}`)), 'after'),
  )
  statuses.held = await send(forward(await fresh(), 'during'))
  statuses.otherJob = (
    await request(
      nodes[3]!.libp2p,
      target,
      attestForwardProtocol,
      { ...forward(signed, 'before'), jobId: randomBytes(32) },
      { timeout: 5000 },
    )
  ).status
  // A stranger (the executor's own node) is not a member: refused before any check.
  statuses.stranger = (
    await request(w.exec.libp2p, target, attestForwardProtocol, forward(signed, 'before'), {
      timeout: 5000,
    })
  ).status
  return { grantId: toHex(job.jobId), statuses }
}

describe('ADR 0095: forwarded answers to signed challenges', () => {
  it('n = 4, one colluding member silent, the during quote withheld from one honest member: the three decide 7 in normal time, the executor is paid', async () => {
    withhold = { peer: (nodes[2] as DigicapNode).libp2p.peerId.toString(), phase: 'during' }
    const colluding = colluder()
    const t0 = performance.now()
    let grantId: string
    try {
      const run = await w.executor.runCapsule(capsule.cid, { fast: false, fee: FEE })
      grantId = run.grantId.toLowerCase()
    } finally {
      withhold = undefined
    }
    const done = await Promise.all(verifiers.map((v) => v.finished(grantId)))
    const elapsed = performance.now() - t0
    const { statuses } = await colluding
    expect(done.map((e) => (e.event === 'job-failed' ? e.error.message : e.event))).toEqual([
      'settled',
      'settled',
      'settled',
    ])
    // Node 2 never got its own during answer: it counted an honest member's forwarded one.
    const phasesOf = (i: number) =>
      (eventsOf[i] as VerifierEvent[]).flatMap((e) =>
        e.event === 'phase' && e.jobId === grantId ? [e.phase] : [],
      )
    const during = phasesOf(2).find((p) => p.phase === 'during')
    expect(during?.verdict).toBe('verified')
    const honest = [0, 1].map((i) => (wallets[i] as Wallet).address.toLowerCase())
    expect(honest).toContain(during?.forwardedBy?.toLowerCase())
    // The others verified every phase (their own answers, or a forwarded one they got first).
    for (const i of [0, 1]) {
      expect(phasesOf(i).map((p) => p.verdict)).toEqual(['verified', 'verified', 'verified'])
    }
    const decided = verifiers.map(
      (_, i) =>
        (eventsOf[i] as VerifierEvent[]).find(
          (e) => e.event === 'decided' && e.jobId === grantId && e.round === 'final',
        ) as Extract<VerifierEvent, { event: 'decided' }> | undefined,
    )
    expect(decided.map((d) => d?.verdict)).toEqual([7, 7, 7])
    const job = await connectSettlement(w.addresses, w.anvil.provider).attestationHub.jobs(grantId)
    expect(job.status).toBe(4n) // settled
    expect(Number(job.verdict)).toBe(7)
    // Normal time: far below the 25 s a round may take (a timeout would show here).
    expect(elapsed, `${Math.round(elapsed)} ms`).toBeLessThan(45_000)
    console.log(`forwarding: run to three settled members in ${Math.round(elapsed)} ms`)
    // The colluder's garbage: each refused with its reason, none crashed node 2.
    expect(statuses).toEqual({
      wrongPhase: 'kept', // its challenge holds; the quote is judged when node 2 needs the phase
      stale: 'stale',
      nonMember: 'non-member',
      held: 'held',
      otherJob: 'unknown-job',
      stranger: 'non-member',
    })
    const refused = (eventsOf[2] as VerifierEvent[]).flatMap((e) =>
      e.event === 'forward-refused' && e.jobId === grantId ? [e] : [],
    )
    expect(refused.map((e) => e.reason)).toEqual(
      expect.arrayContaining(['wrong-phase', 'stale', 'non-member']),
    )
    const wrongPhase = refused.find((e) => e.reason === 'wrong-phase')
    expect(wrongPhase?.details).toMatchObject({ claimed: 'during', shown: 'before' })
  }, 90_000)

  it('the after quote withheld from one honest member (one colluding member silent): it counts a forwarded after and the three decide 7', async () => {
    withhold = { peer: (nodes[2] as DigicapNode).libp2p.peerId.toString(), phase: 'after' }
    const colluding = colluder(false)
    const t0 = performance.now()
    let grantId: string
    try {
      const run = await w.executor.runCapsule(capsule.cid, { fast: false, fee: FEE })
      grantId = run.grantId.toLowerCase()
      const done = await Promise.all(verifiers.map((v) => v.finished(grantId)))
      expect(done.map((e) => (e.event === 'job-failed' ? e.error.message : e.event))).toEqual([
        'settled',
        'settled',
        'settled',
      ])
    } finally {
      withhold = undefined
    }
    const elapsed = performance.now() - t0
    expect((await colluding).grantId).toBe(grantId)
    const after = (eventsOf[2] as VerifierEvent[]).find(
      (e) => e.event === 'phase' && e.jobId === grantId && e.phase.phase === 'after',
    ) as Extract<VerifierEvent, { event: 'phase' }>
    expect(after.phase.verdict).toBe('verified')
    expect([0, 1].map((i) => (wallets[i] as Wallet).address.toLowerCase())).toContain(
      after.phase.forwardedBy?.toLowerCase(),
    )
    const job = await connectSettlement(w.addresses, w.anvil.provider).attestationHub.jobs(grantId)
    expect(job.status).toBe(4n)
    expect(Number(job.verdict)).toBe(7)
    expect(elapsed, `${Math.round(elapsed)} ms`).toBeLessThan(45_000)
  }, 90_000)

  it('a forwarded challenge over a foreign or stale nonce is refused with a typed error (real chain, the last job’s committee)', async () => {
    const chain = chains[0] as VerifierChain
    const [job] = await chain.openedJobs(0, await chain.blockNumber()).then((j) => j.slice(-1))
    expect(job).toBeDefined()
    const jobId = (job as { jobId: Uint8Array }).jobId
    const { grantBlock, lastBlock } = await chain.sortition(jobId)
    const seats = await chain.seats(jobId)
    const committee = pbftCommittee(
      await Promise.all(
        seats.members.map(async (address) => ({
          address,
          peerId: `peer-${address.toLowerCase()}`,
        })),
      ),
    )
    const domain = pbftDomain(chain.chainId, chain.hub)
    const params = {
      jobId,
      committee,
      domain,
      fromBlock: lastBlock,
      blockOf: (h: Uint8Array) => (chain.blockOf as NonNullable<VerifierChain['blockOf']>)(h),
    }
    const member = privateKeySigner((wallets[0] as Wallet).privateKey as `0x${string}`)
    const head = await (chain.head as NonNullable<VerifierChain['head']>)()
    const evidence = {
      attest: new Uint8Array([1]),
      signature: new Uint8Array([1]),
      pcrValues: new Uint8Array(288),
      eventLog: new Uint8Array(7),
    }
    const forwardOf = async (
      signer: typeof member,
      fields: { jobId: Uint8Array; blockHash: Uint8Array; seq: bigint },
    ): Promise<AttestForward> => {
      const s = await signAttestChallenge(signer, domain, fields)
      return {
        jobId: s.jobId,
        blockHash: s.blockHash,
        seq: s.seq,
        challengeSignature: s.signature,
        phase: 'during',
        evidence,
      }
    }
    const reason = async (forward: AttestForward) => {
      try {
        await checkForwardedChallenge(params, forward)
        return 'accepted'
      } catch (err) {
        expect(err).toBeInstanceOf(ForwardRefusedError)
        expect((err as ForwardRefusedError).code).toBe('VERIFIER_FORWARD')
        return (err as ForwardRefusedError).reason
      }
    }
    const ok = await forwardOf(member, { jobId, blockHash: head.hash, seq: 7n })
    expect(await reason(ok)).toBe('accepted')
    const accepted = await checkForwardedChallenge(params, ok)
    expect(accepted.challenger.toLowerCase()).toBe((wallets[0] as Wallet).address.toLowerCase())
    expect(toHex(accepted.nonce)).toBe(toHex(attestChallengeNonce(ok.challengeSignature)))
    // another job: signed for it, or this job's signature carried under another job id
    const other = randomBytes(32)
    expect(
      await reason(await forwardOf(member, { jobId: other, blockHash: head.hash, seq: 7n })),
    ).toBe('unknown-job')
    // a block before the phase window (the grant's, before the sortition window closed)
    const old = await w.anvil.provider.getBlock(grantBlock)
    expect(
      await reason(await forwardOf(member, { jobId, blockHash: getBytes(old!.hash!), seq: 7n })),
    ).toBe('stale')
    // a block of no chain
    expect(
      await reason(await forwardOf(member, { jobId, blockHash: randomBytes(32), seq: 7n })),
    ).toBe('unknown-block')
    // a non-member's signature
    const stranger = privateKeySigner(hexlify(randomBytes(32)) as `0x${string}`)
    expect(await reason(await forwardOf(stranger, { jobId, blockHash: head.hash, seq: 7n }))).toBe(
      'non-member',
    )
    // a member's signature over other fields (another seq): recovers to someone else
    expect(await reason({ ...ok, seq: 8n })).toBe('non-member')
    // another chain's or hub's domain: the same, a non-member
    const foreign = await signAttestChallenge(member, pbftDomain(chain.chainId + 1n, chain.hub), {
      jobId,
      blockHash: head.hash,
      seq: 7n,
    })
    expect(await reason({ ...ok, challengeSignature: foreign.signature })).toBe('non-member')
    // a signature that does not recover (high s, zeroed)
    expect(await reason({ ...ok, challengeSignature: new Uint8Array(65) })).toBe('signature')

    // One job's inbox: one checked answer per (sender, phase); a block this node's RPC does not
    // know may be tried again (it may lag the sender's), 3 times, then the slot is spent.
    const inbox = jobForwards({
      ...params,
      committee: pbftCommittee(
        seats.members.map((address, i) => ({ address, peerId: `peer-${i}` })),
      ),
    })
    const unknown = await forwardOf(member, { jobId, blockHash: randomBytes(32), seq: 9n })
    expect(await inbox.receive('stranger', ok)).toBe('non-member')
    for (let i = 0; i < 3; i++) expect(await inbox.receive('peer-1', unknown)).toBe('unknown-block')
    expect(await inbox.receive('peer-1', unknown)).toBe('unknown-block')
    expect(await inbox.receive('peer-1', ok)).toBe('held')
    expect(await inbox.receive('peer-2', ok)).toBe('kept')
    expect(await inbox.receive('peer-2', ok)).toBe('held')
    expect(await inbox.receive('peer-3', { ...ok, phase: 'after' })).toBe('kept')
    expect(inbox.answers('during').map((a) => a.sender)).toEqual(['peer-2'])
    expect(inbox.answers('after').map((a) => a.sender)).toEqual(['peer-3'])
    expect(inbox.refused.get('unknown-block')).toBe(4)
  }, 30_000)
})
