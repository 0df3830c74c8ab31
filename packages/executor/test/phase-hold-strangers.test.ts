/**
 * A committee member watching an honest run sees its three phases verified while stranger
 * peers challenge the executor in a loop with grant ids of their own: a stranger's quote does
 * not end a phase hold (phase-hold.ts), so the run still waits for the committee. Grant ids are
 * public, though: with the hub's seats (`hubCommittees`, ADR 0070) strangers quoting the run's
 * own grant id end nothing either. Real swtpm, real libp2p nodes on loopback; the strangers are
 * the fault injected (the seats are those a hub would answer, in memory here; the anvil test is
 * in verifier-committee.test.ts).
 */
import { randomBytes } from 'node:crypto'
import {
  attestationRecordHash,
  createActivationCache,
  encodeAttestationRecord,
  requestAttestation,
} from '@digicap/attestation'
import {
  createAttestationAgent,
  recordFromAgent,
  serveAttestation,
} from '@digicap/attestation/agent'
import { requestMeasurement } from '@digicap/capsule-core'
import { type Swtpm, startSwtpm } from '@digicap/keyguard/testing'
import { createDigicapNode, type DigicapNode } from '@digicap/p2p'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { hubCommittees } from '../src/node/job-committees.ts'
import { holdPhasesForQuotes } from '../src/node/phase-hold.ts'
import { watchRun } from '../src/node/verifier/watch-run.ts'

const bytes = (n = 32) => new Uint8Array(randomBytes(n))
const STRANGERS = 4
let tpm: Swtpm
let exec: DigicapNode
let verifier: DigicapNode
const strangers: DigicapNode[] = []
/** Three seated members that never challenge (only their peer ids matter). */
const silent: DigicapNode[] = []

beforeAll(async () => {
  tpm = await startSwtpm()
  ;[exec, verifier] = await Promise.all([createDigicapNode(), createDigicapNode()])
  await verifier.libp2p.dial(exec.libp2p.getMultiaddrs())
  for (let i = 0; i < STRANGERS; i++) {
    const n = await createDigicapNode()
    strangers.push(n)
    await n.libp2p.dial(exec.libp2p.getMultiaddrs())
  }
  silent.push(...(await Promise.all([1, 2, 3].map(() => createDigicapNode()))))
}, 90_000)

afterAll(async () => {
  await Promise.all([exec, verifier, ...strangers, ...silent].map((n) => n?.stop()))
  await tpm?.stop()
})

/**
 * An honest run held for a committee of 4 with one member watching, while the strangers loop
 * challenges, with the run's grant id (`ownGrant`) or a fresh one each time; with `committee`
 * the holds count only the seats; returns the watch's phases.
 */
async function runUnderFlood(
  options: { committee?: boolean; ownGrant?: boolean } = {},
): Promise<{ phases: string[]; strangerQuotes: number; seatReads: number }> {
  const agent = createAttestationAgent({ tcti: tpm.tcti })
  await agent.resetRunPcr()
  const recordBytes = encodeAttestationRecord(await recordFromAgent(agent))
  const run = {
    runtimeDigest: bytes(),
    capsuleHeaderHash: bytes(),
    grantId: bytes(),
    ephemeralPublicKey: bytes(),
  }
  // The hub's answer for this job: the watching verifier and three members that never challenge.
  let seatReads = 0
  const member = '0x00000000000000000000000000000000000000a1'
  const registered = new Map<string, Uint8Array>([
    [member, verifier.libp2p.peerId.toMultihash().bytes],
    ...silent.map((n, i): [string, Uint8Array] => [
      `0x00000000000000000000000000000000000000b${i}`,
      n.libp2p.peerId.toMultihash().bytes,
    ]),
  ])
  const committees = options.committee
    ? hubCommittees({ pollMs: 100 })({
        chain: {
          seats: async (jobId) => {
            seatReads++
            expect(jobId).toEqual(run.grantId) // only the held grant is ever read
            return { members: [...registered.keys()] as `0x${string}`[], closed: true }
          },
          node: async (address) => ({
            peerId: registered.get(address) as Uint8Array,
            attestationKeyHash: new Uint8Array(32),
          }),
        },
      })
    : undefined
  const holding = holdPhasesForQuotes(agent, 20_000, { challengers: 4, graceMs: 3000, committees })
  const unserve = await serveAttestation(exec.libp2p, holding.served, { record: recordBytes })
  const watching = watchRun({
    libp2p: verifier.libp2p,
    peer: exec.libp2p.peerId,
    jobId: run.grantId,
    grant: {
      measurement: requestMeasurement(run.runtimeDigest, run.capsuleHeaderHash),
      ephemeralKey: run.ephemeralPublicKey,
      executor: '0x0000000000000000000000000000000000000000',
    },
    registeredHash: attestationRecordHash(recordBytes),
    activations: createActivationCache(),
    watchMs: 30_000,
    everyMs: 500,
  })
  let stop = false
  let strangerQuotes = 0
  const flood = Promise.all(
    strangers.map(async (s) => {
      while (!stop) {
        await requestAttestation(s.libp2p, exec.libp2p.peerId, {
          grantId: options.ownGrant ? run.grantId : bytes(),
          ephemeralKey: bytes(),
        }).then(
          () => strangerQuotes++,
          () => {},
        )
      }
    }),
  )
  await new Promise((r) => setTimeout(r, 200))
  try {
    // The honest executor: a measured run, no work, its clean-up.
    await holding.run.measureRun(run)
    await holding.run.endRun({
      grantId: run.grantId,
      workspaceRemoved: true,
      keyBuffersWiped: true,
    })
    const watched = await watching
    return {
      phases: watched.phases.map((p) => `${p.phase}:${p.verdict}`),
      strangerQuotes,
      seatReads,
    }
  } finally {
    stop = true
    await flood
    await unserve()
    committees?.stop()
  }
}

describe('phase holds and stranger challengers', () => {
  it('strangers quoting other grant ids do not end the holds: the committee verifies all three phases', async () => {
    const { phases, strangerQuotes } = await runUnderFlood()
    expect(strangerQuotes).toBeGreaterThan(0) // the strangers were answered all along
    expect(phases).toEqual(['before:verified', 'during:verified', 'after:verified'])
  }, 90_000)

  it('strangers quoting the run’s own (public) grant id do not end the holds once the hub’s seats are read: only seated members count', async () => {
    const { phases, strangerQuotes, seatReads } = await runUnderFlood({
      committee: true,
      ownGrant: true,
    })
    expect(strangerQuotes).toBeGreaterThan(10) // answered all along, with the run's grant id
    expect(phases).toEqual(['before:verified', 'during:verified', 'after:verified'])
    // A closed committee is read once and kept, however many stranger quotes named its grant.
    expect(seatReads).toBe(1)
  }, 90_000)
})
