/** Shared set-up of the PBFT tests: keys, a committee, real libp2p nodes on loopback. */
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { type DigicapSigner, privateKeySigner } from '@digicap/capsule-core'
import { CONNECTION_MONITOR } from '@digicap/p2p/light'
import { PBFT_PROTOCOL, type PbftMessage } from '@digicap/protocol'
import { identify } from '@libp2p/identify'
import type { Libp2p } from '@libp2p/interface'
import { tcp } from '@libp2p/tcp'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { createLibp2p } from 'libp2p'
import { afterEach } from 'vitest'
import {
  createPbftNode,
  type EquivocationProof,
  libsecp256k1Signer,
  type PbftCertificate,
  type PbftCommittee,
  type PbftDomain,
  type PbftNode,
  type PbftNodeOptions,
  PbftReplica,
  type PbftReplicaOptions,
  type PbftVoteError,
  pbftCommittee,
  pbftDomain,
  signVote,
} from '../src/index.ts'

export const domain: PbftDomain = pbftDomain(31337n, '0x5FbDB2315678afecb367f032d93F642f64180aa3')
export const jobId = keccak_256(new TextEncoder().encode('job-1'))
export const evidenceHash = keccak_256(new TextEncoder().encode('evidence-1'))
/** All three run phases passed. */
export const PASS = { verdict: 7, evidenceHash }
/** The "before" phase failed. */
export const FAIL = { verdict: 6, evidenceHash }

/** Deterministic member keys: key i = keccak("member-i"). */
export function signers(n: number): DigicapSigner[] {
  return Array.from({ length: n }, (_, i) => privateKeySigner(memberKey(i)))
}

/** Member i's private key (the same for every signer kind here). */
const memberKey = (i: number) => keccak_256(new TextEncoder().encode(`member-${i}`))

/**
 * The same members' keys as {@link signers}, signing as a verifier node does (libsecp256k1, ADR
 * 0098; the same bytes). The benches use these unless `BENCH_SIGNER=noble`.
 */
export function benchSigners(n: number): DigicapSigner[] {
  if (process.env.BENCH_SIGNER === 'noble') return signers(n)
  return Array.from({ length: n }, (_, i) => libsecp256k1Signer(memberKey(i)))
}

/** A committee of the signers, with made-up peer ids (for tests without a network). */
export function paperCommittee(keys: DigicapSigner[]): PbftCommittee {
  return pbftCommittee(keys.map((k, i) => ({ address: k.address, peerId: `peer-${i}` })))
}

/**
 * A replica without a network, recording what it sends and the faults and equivocation proofs it
 * reports: job {@link jobId}, value {@link PASS}, a 60 s view timeout unless `options` say otherwise.
 */
export function recordingReplica(
  options: Pick<PbftReplicaOptions, 'committee' | 'signer'> & Partial<PbftReplicaOptions>,
) {
  const sent: PbftMessage[] = []
  const faults: PbftVoteError[] = []
  const proofs: EquivocationProof[] = []
  const r = new PbftReplica({
    domain,
    jobId,
    value: PASS,
    send: (_to, m) => sent.push(m),
    onFault: (e) => faults.push(e),
    onEquivocation: (p) => proofs.push(p),
    viewTimeout: 60_000,
    ...options,
  })
  return { r, sent, faults, proofs }
}

/**
 * A {@link recordingReplica} that already holds the observation of `value` (default
 * {@link PASS}) of every other member among `keys` (ADR 0087), as if they had sent them: it
 * backs a proposal of that value at once, like a member whose committee saw the same run.
 */
export async function observedReplica(
  options: Pick<PbftReplicaOptions, 'committee' | 'signer'> & Partial<PbftReplicaOptions>,
  keys: DigicapSigner[],
  value = options.value ?? PASS,
) {
  const rec = recordingReplica(options)
  const jobOf = options.jobId ?? jobId
  for (const k of keys) {
    if (k.address === options.signer.address) continue
    const member = options.committee.members.find((m) => m.address === k.address)
    if (member === undefined) continue
    const vote = await signVote(k, options.domain ?? domain, {
      phase: 'observation',
      jobId: jobOf,
      view: 0n,
      preparedView: 0n,
      ...value,
    })
    await rec.r.receive(member, { vote, proof: [] })
  }
  return rec
}

/** A real libp2p 3 node on loopback: TCP, noise, yamux, identify. Started. */
export async function createNode(
  timeouts: {
    dialTimeout?: number
    addressDialTimeout?: number
    inboundUpgradeTimeout?: number
  } = {},
): Promise<Libp2p> {
  return createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify() },
    // A whole committee dials one host from 127.0.0.1 at once; libp2p's default of 5 inbound
    // connections per second per host would reset some of them.
    connectionManager: { inboundConnectionThreshold: 1000, ...timeouts },
    // as a Digicap node (ADR 0041): a starved process answers pings late on a loaded box, and
    // libp2p's adaptive timeout (5 s floor) would abort the connection and every vote on it
    connectionMonitor: CONNECTION_MONITOR,
  })
}

/** Dials in flight at once while a mesh comes up. */
const MESH_PARALLEL = 4

/** n started nodes, fully connected: each pair dialled once, a few dials at a time. */
export async function createMesh(n: number): Promise<Libp2p[]> {
  const nodes = await Promise.all(Array.from({ length: n }, () => createNode()))
  const pairs: [Libp2p, Libp2p][] = []
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) pairs.push([nodes[i] as Libp2p, nodes[j] as Libp2p])
  }
  let next = 0
  const worker = async () => {
    for (let pair = pairs[next++]; pair !== undefined; pair = pairs[next++]) {
      await dialWithRetry(...pair)
    }
  }
  await Promise.all(Array.from({ length: MESH_PARALLEL }, worker))
  return nodes
}

// A loaded box now and then resets a loopback connect; one retry is enough.
async function dialWithRetry(a: Libp2p, b: Libp2p): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await a.dial(b.getMultiaddrs())
      return
    } catch (err) {
      if (attempt >= 3) throw err
    }
  }
}

/** The committee of `keys` on `nodes`: member i is key i at node i's peer id. */
export function meshCommittee(keys: DigicapSigner[], nodes: Libp2p[]): PbftCommittee {
  return pbftCommittee(
    keys.map((k, i) => ({ address: k.address, peerId: (nodes[i] as Libp2p).peerId.toString() })),
  )
}

/** One test's PBFT network on real libp2p nodes; see {@link pbftNetwork}. */
export interface PbftNetwork {
  /** Starts keys.length nodes, fully connected, and makes the committee of the keys on them. */
  mesh(keys: DigicapSigner[]): Promise<{ mesh: Libp2p[]; committee: PbftCommittee }>
  /** A started node outside the committee. */
  outsider(): Promise<Libp2p>
  /**
   * Member i of the mesh (its node, its key) as a PBFT node, not yet started: job {@link jobId},
   * value {@link PASS}, a 30 s view timeout unless `options` say otherwise.
   */
  member(i: number, options?: Partial<PbftNodeOptions>): Promise<PbftNode>
  /** Starts every member made so far and resolves with their certificates. */
  decide(): Promise<PbftCertificate[]>
}

/**
 * A test file's PBFT networks: each test makes its own through the returned object, and all of
 * it (members, then nodes) is stopped after that test. Call at the top of the file.
 */
export function pbftNetwork(): PbftNetwork {
  let nodes: Libp2p[] = []
  let members: PbftNode[] = []
  let current: { mesh: Libp2p[]; keys: DigicapSigner[]; committee: PbftCommittee } | undefined
  afterEach(async () => {
    await Promise.all(members.map((m) => m.stop()))
    await Promise.all(nodes.map((n) => n.stop()))
    members = []
    nodes = []
    current = undefined
  })
  return {
    async mesh(keys) {
      const mesh = await createMesh(keys.length)
      nodes.push(...mesh)
      current = { mesh, keys, committee: meshCommittee(keys, mesh) }
      return { mesh, committee: current.committee }
    },
    async outsider() {
      const node = await createNode()
      nodes.push(node)
      return node
    },
    async member(i, options = {}) {
      if (current === undefined) throw new Error('pbftNetwork: make the mesh before its members')
      const member = await createPbftNode({
        node: current.mesh[i] as Libp2p,
        committee: current.committee,
        domain,
        jobId,
        signer: current.keys[i] as DigicapSigner,
        value: PASS,
        viewTimeout: 30_000,
        ...options,
      })
      members.push(member)
      return member
    },
    async decide() {
      await Promise.all(members.map((m) => m.start()))
      return Promise.all(members.map((m) => m.decided))
    },
  }
}

/** Raw bytes on a new PBFT stream from `from` to `to` (a hostile member or an outsider). */
export async function rawSend(from: Libp2p, to: Libp2p, bytes: Uint8Array): Promise<void> {
  try {
    const stream = await from.dialProtocol(to.peerId, PBFT_PROTOCOL)
    stream.send(bytes)
    await stream.close()
  } catch {
    // The receiver may abort first (a non-member, an oversized frame): that is the point.
  }
}
