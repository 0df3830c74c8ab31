/**
 * A verifier killed mid-round and restarted on its data folder does not equivocate (ADR 0093).
 *
 * Real anvil with the settlement deployed, real libp2p on loopback, an executor's attestation
 * served from a real swtpm. Four seats: members A and B are stock verifier nodes in this process,
 * C is a stock verifier node in a child process with its signed-vote record in its folder, D is
 * seated by its ticket and never heard (a crashed member): the before round needs A, B and C.
 *
 * C's first life watches the run while the executor answers nobody: it judges the before phase
 * missed and signs its observation (verdict 0); it is killed with SIGKILL right after. The
 * executor then answers challenges, and C restarts on the same folder from a block before the
 * job. It takes its seat again, sees the before phase verified and would now observe verdict 1:
 * a second, different observation of one member in one slot, which A and B catch and the hub
 * slashes (ADR 0092). With the record it signs no such vote: its first observation stands, it
 * prepares and commits with A and B, and the round decides (it could not without C).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { attestationRecordHash, encodeAttestationRecord } from '@digicap/attestation'
import { createAttestationAgent, serveAttestation } from '@digicap/attestation/agent'
import { hexToBytes, privateKeySigner, toHex } from '@digicap/capsule-core'
import {
  beforeRoundId,
  conflicting,
  drawTicket,
  equivocationCall,
  hubCommittee,
} from '@digicap/committee'
import { type Swtpm, startSwtpm } from '@digicap/keyguard/testing'
import { createDigicapNode, type DigicapNode, privateKeyFromSeed } from '@digicap/p2p'
import type { PbftPhase, PbftVote } from '@digicap/protocol'
import { onchainProof } from '@digicap/vrf'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { getBytes, hexlify, parseEther, randomBytes, type Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  decodeSignedVotes,
  ethersVerifierChain,
  type VerifierEvent,
  type VerifierNode,
  verifierNode,
} from '../src/node/index.ts'
import { type VerifierLife as Life, startVerifierLife } from './helpers/verifier-life.ts'
import {
  anvilWallets,
  mineEvery,
  openAttestedJob,
  setupWorld,
  type World,
} from './helpers/world.ts'

const STAKE = parseEther('0.01')
const PHASES: Record<string, PbftPhase> = {
  PrePrepare: 'pre-prepare',
  Prepare: 'prepare',
  Commit: 'commit',
  Observation: 'observation',
  ViewChange: 'view-change',
}

let w: World
let tpm: Swtpm
let dir: string
let wallets: Wallet[] = []
let nodes: DigicapNode[] = []
let verifiers: VerifierNode[] = []
let miner: ReturnType<typeof setInterval> | undefined
let stopServing: (() => Promise<void>) | undefined
const lives: Life[] = []
/** Events of A and B. */
const eventsOf: VerifierEvent[][] = [[], []]
const seedC = hexlify(randomBytes(32)) as `0x${string}`
let recordBytes: Uint8Array
let startServing: () => Promise<void>

function startLife(config: Record<string, unknown>): Life {
  const life = startVerifierLife(config)
  lives.push(life)
  return life
}

/** The votes C's key signed in `life`, as PBFT votes (not its attestation challenges, ADR 0095). */
function signedIn(life: Life): PbftVote[] {
  return life.docs
    .filter((d) => d.event === 'signed' && PHASES[d.primaryType as string] !== undefined)
    .map((d) => {
      const m = d.message as Record<string, string>
      return {
        phase: PHASES[d.primaryType as string] as PbftPhase,
        jobId: hexToBytes(m.jobId as `0x${string}`),
        view: BigInt(m.view as string),
        preparedView: BigInt(m.preparedView ?? '0'),
        verdict: Number(m.verdict),
        evidenceHash: hexToBytes(m.evidenceHash as `0x${string}`),
        signature: hexToBytes(d.signature as `0x${string}`),
      }
    })
}

/** Pairs of votes the hub takes as an equivocation (same phase, round and view, other value). */
function conflicts(votes: PbftVote[]): [PbftVote, PbftVote][] {
  const out: [PbftVote, PbftVote][] = []
  for (const [i, a] of votes.entries())
    for (const b of votes.slice(i + 1)) if (conflicting(a, b)) out.push([a, b])
  return out
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'verifier-restart-'))
  tpm = await startSwtpm()
  const agent = createAttestationAgent({ tcti: tpm.tcti })
  const keys = await agent.provision()
  await agent.resetRunPcr()
  const q = await agent.quote({
    nonce: randomBytes(32),
    grantId: randomBytes(32),
    ephemeralPublicKey: randomBytes(32),
  })
  const record = { ...keys, bootPcrs: new Map([...q.pcrValues].filter(([i]) => i !== 23)) }
  recordBytes = encodeAttestationRecord(record)
  w = await setupWorld({
    fastPath: false,
    settlement: { seats: 4, sortitionWindow: 20, certificateBlocks: 600 },
  })
  // The executor's registered record is its TPM's; it answers no challenge until told to.
  await (
    await w.c.nodeRegistry
      .connect(w.executorWallet)
      .update(w.exec.libp2p.peerId.toMultihash().bytes, hexlify(attestationRecordHash(record)), 1)
  ).wait()
  startServing = async () => {
    stopServing = await serveAttestation(w.exec.libp2p, agent, {
      record: recordBytes,
      trustedChallengers: () => true,
    })
  }
  wallets = anvilWallets(w, [4, 6, 7, 8])
  nodes = await Promise.all([0, 1].map(() => createDigicapNode()))
  for (const other of [nodes[1] as DigicapNode, w.exec]) {
    await (nodes[0] as DigicapNode).libp2p.dial(other.libp2p.getMultiaddrs()[0]!)
  }
  await (nodes[1] as DigicapNode).libp2p.dial(w.exec.libp2p.getMultiaddrs()[0]!)
  const peerC = peerIdFromPrivateKey(await privateKeyFromSeed(getBytes(seedC)))
  const peerD = peerIdFromPrivateKey(await privateKeyFromSeed(randomBytes(32)))
  const peers = [nodes[0]!.libp2p.peerId, nodes[1]!.libp2p.peerId, peerC, peerD]
  for (const [i, wallet] of wallets.entries()) {
    await (
      await w.c.nodeRegistry
        .connect(wallet)
        .register(peers[i]!.toMultihash().bytes, `0x${'00'.repeat(32)}`, 2, { value: STAKE })
    ).wait()
  }
  verifiers = [0, 1].map((i) =>
    verifierNode({
      pollMs: 200,
      openJobs: false,
      ticketWaves: false,
      settle: false,
      watchMs: 3000,
      challengeEveryMs: 300,
    })({
      libp2p: (nodes[i] as DigicapNode).libp2p,
      chain: ethersVerifierChain({
        addresses: w.addresses,
        settlement: w.addresses as never,
        runner: wallets[i] as Wallet,
      }),
      signer: privateKeySigner((wallets[i] as Wallet).privateKey as `0x${string}`),
      vrfKey: getBytes((wallets[i] as Wallet).privateKey),
      onEvent: (e) => eventsOf[i]?.push(e),
    }),
  )
  await Promise.all(verifiers.map((v) => v.start()))
  miner = mineEvery(w)
}, 120_000)

afterAll(async () => {
  if (miner !== undefined) clearInterval(miner)
  for (const life of lives) life.proc.kill('SIGKILL')
  await Promise.all(lives.map((l) => l.exited))
  await stopServing?.().catch(() => {})
  await Promise.allSettled(verifiers.map((v) => v.stop()))
  await Promise.allSettled(nodes.map((n) => n.stop()))
  await w?.stop()
  await tpm?.stop()
  await rm(dir, { recursive: true, force: true })
})

describe('a verifier killed mid-round and restarted on its data folder (ADR 0093)', () => {
  it('signs no second, different vote for any slot, and resumes its round', async () => {
    const record = join(dir, 'signed-votes.json')
    const child = {
      rpcUrl: w.anvil.rpcUrl,
      chainId: w.addresses.chainId,
      addresses: w.addresses,
      key: wallets[2]!.privateKey,
      seed: seedC,
      peers: [...nodes, w.exec].map((n) => n.libp2p.getMultiaddrs()[0]!.toString()),
      record,
      watchMs: 3000,
    }
    const fromBlock = await w.anvil.provider.getBlockNumber()
    const first = startLife({ ...child, fromBlock, create: true })
    await expect
      .poll(() => first.docs.some((d) => d.event === 'ready'), { timeout: 30_000 })
      .toBe(true)

    const { grantId, hub } = await openAttestedJob(w)
    // D is seated by its ticket and never heard again.
    const chainD = ethersVerifierChain({
      addresses: w.addresses,
      settlement: w.addresses as never,
      runner: wallets[3] as Wallet,
    })
    const jobId = getBytes(grantId)
    let sortition: Awaited<ReturnType<typeof chainD.sortition>> | undefined
    while (sortition === undefined) {
      // The seed needs the grant block's hash: readable from the next block on.
      sortition = await chainD.sortition(jobId).catch(() => undefined)
      if (sortition === undefined) await new Promise((r) => setTimeout(r, 200))
    }
    const ticket = drawTicket(getBytes(wallets[3]!.privateKey), sortition.seed)
    await chainD.submitTicket(jobId, onchainProof(ticket.publicKey, sortition.seed, ticket.proof))

    // First life: the before phase missed, its observation signed; then SIGKILL at once. Not
    // later: A, B and C all missed it, so with C's prepare and commit the round could decide a
    // fail before the kill, and then a restarted C rightly signs nothing more (review 135).
    await expect
      .poll(() => first.docs.some((d) => d.event === 'signed' && d.primaryType === 'Observation'), {
        timeout: 30_000,
        interval: 10,
      })
      .toBe(true)
    first.proc.kill('SIGKILL')
    await first.exited
    const firstVotes = signedIn(first)
    expect(firstVotes.filter((v) => v.phase === 'observation')).toEqual([
      expect.objectContaining({ verdict: 0 }),
    ])

    // The executor answers now; C restarts on the same folder with no fromBlock, as `serve`
    // does: its record's open slots make it look back for the job (ADR 0093 amendment).
    await startServing()
    const second = startLife({ ...child, fromBlock: null, create: false })
    // It resumes: the before round decides, which A and B cannot do without it.
    const decided = (i: number) =>
      eventsOf[i]!.some((e) => e.event === 'decided' && e.jobId === grantId && e.round === 'before')
    await expect
      .poll(
        () =>
          second.docs.some(
            (d) =>
              d.event === 'verifier' &&
              d.kind === 'phase' &&
              (d.phase as { phase: string }).phase === 'before',
          ) &&
          decided(0) &&
          decided(1),
        { timeout: 45_000, interval: 200 },
      )
      .toBe(true)
    // The restarted member saw the before phase verified this time: a different observation.
    expect(
      second.docs.find(
        (d) =>
          d.event === 'verifier' &&
          d.kind === 'phase' &&
          (d.phase as { phase: string }).phase === 'before',
      )?.phase,
    ).toMatchObject({ verdict: 'verified' })

    const all = [...firstVotes, ...signedIn(second)]
    const pairs = conflicts(all)
    // What the hub makes of a pair (none expected): a report convicts and slashes the member
    // (A or B may have reported it first: then this one is refused, AlreadyConvicted).
    const sorted = hubCommittee((await chainD.seats(jobId)).members)
    for (const [a, b] of pairs.slice(0, 1)) {
      const call = equivocationCall({ member: wallets[2]!.address as `0x${string}`, a, b })
      await hub
        .connect(w.other)
        .reportBeforeEquivocation(grantId, [...sorted], call.a, call.b)
        .then((tx) => tx.wait())
        .catch(() => {})
    }
    const member = await w.c.nodeRegistry.getNode(wallets[2]!.address)
    expect({
      conflicts: pairs.map(([a, b]) => `${a.phase} view ${a.view}: ${a.verdict} and ${b.verdict}`),
      stake: member.stake,
      convicted: member.reputation === 0n,
    }).toEqual({ conflicts: [], stake: STAKE, convicted: false })
    // Neither A nor B caught C signing two values.
    for (const events of eventsOf) {
      expect(events.filter((e) => e.event === 'equivocation')).toEqual([])
    }
    // The record on disk holds this round's slots (nothing was lost at the kill).
    const doc = decodeSignedVotes(await readFile(record, 'utf8'), record)
    expect(doc.entries.some((e) => e.slot.endsWith(':observation:0'))).toBe(true)
    // Once the job settles on chain, the restarted node prunes its rounds from the record and
    // closes them: nothing more is signed for them, and the record shrinks back.
    await expect
      .poll(async () => (await hub.jobs(grantId)).status, { timeout: 30_000, interval: 250 })
      .toBe(3n) // Certified (the before round's fail)
    await (await hub.connect(w.other).settle(grantId, [...sorted])).wait()
    await expect
      .poll(
        async () => {
          const now = decodeSignedVotes(await readFile(record, 'utf8'), record)
          return { entries: now.entries.length, closed: now.closed }
        },
        { timeout: 15_000, interval: 250 },
      )
      .toEqual({ entries: 0, closed: [toHex(beforeRoundId(jobId)), grantId] })

    // Review 135: a third life on a record that no longer knows this job (its closed rounds
    // rolled past `maxClosed`, here a new record), from before the job again. The job is
    // settled: nothing is left to sign. Before the fix it took its seat, saw the before phase
    // verified and signed observation verdict 1 for the slot its first life signed 0 in.
    second.proc.kill('SIGKILL')
    await second.exited
    await rm(record)
    const third = startLife({ ...child, fromBlock, create: true })
    const thirdDone = () =>
      third.docs.some(
        (d) =>
          (d.event === 'signed' && d.primaryType === 'Observation') ||
          (d.event === 'verifier' && (d.kind === 'settled' || d.kind === 'job-failed')),
      )
    await expect.poll(thirdDone, { timeout: 45_000, interval: 200 }).toBe(true)
    expect(signedIn(third)).toEqual([])
    expect(third.docs.filter((d) => d.event === 'verifier').map((d) => d.kind)).toContain('settled')
    expect(conflicts([...firstVotes, ...signedIn(second), ...signedIn(third)])).toEqual([])
  }, 180_000)
})
