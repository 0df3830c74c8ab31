/**
 * `/digicap/attest/1.0.0` end to end: a verifier node challenges an executor node over real
 * libp2p (loopback TCP, noise, yamux) whose agent quotes on a real swtpm. Before, during and
 * after a run the evidence passes `verifyAttestation`; a lying executor (fault injection)
 * that replays old evidence, reports a dirty clean-up or skips the clean-up reset is refused
 * with its code; a TPM that is gone is an `internal` error reply, and the node keeps serving.
 */
import { randomBytes } from 'node:crypto'
import { DigicapError } from '@digicap/capsule-core'
import { attestProtocol, handle } from '@digicap/protocol'
import { type Swtpm, startSwtpm } from '@digicap/tpm/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type AgentKeys,
  type AttestationAgent,
  createAttestationAgent,
  DEFAULT_ATTEST_CHALLENGES,
  serveAttestation,
} from '../src/agent/index.ts'
import {
  type AttestationResponse,
  parseQuoteAttest,
  type QuoteClock,
  requestAttestation,
  toWireEvidence,
  verifyAttestation,
} from '../src/index.ts'
import { createNode, createPair } from './helpers/nodes.ts'

const bytes = (n = 32) => new Uint8Array(randomBytes(n))

let tpm: Swtpm
let agent: AttestationAgent
let keys: AgentKeys
let pair: Awaited<ReturnType<typeof createPair>>
let unserve: () => Promise<void>
let bootPcrs: Map<number, Uint8Array>

beforeAll(async () => {
  tpm = await startSwtpm()
  agent = createAttestationAgent({ tcti: tpm.tcti, ek: 'ecc' })
  keys = await agent.provision()
  await agent.resetRunPcr()
  pair = await createPair()
  // pair.a challenges as the node's keyguard: trusted, not held to a stranger's rate (ADR 0067).
  unserve = await serveAttestation(pair.b, agent, {
    trustedChallengers: (peer) => peer === pair.a.peerId.toString(),
  })
}, 120_000)

afterAll(async () => {
  await unserve?.()
  await pair?.stop()
  await tpm?.stop()
})

const verdict = (f: () => unknown): string => {
  try {
    f()
    return 'ok'
  } catch (err) {
    return err instanceof DigicapError ? err.code : String(err)
  }
}

function check(
  response: AttestationResponse,
  phase: 'before' | 'during' | 'after',
  run?: Parameters<AttestationAgent['beginRun']>[0],
  previous?: QuoteClock,
): string {
  return verdict(() =>
    verifyAttestation(response, {
      phase,
      attestationKey: keys,
      bootPcrs,
      ...(run === undefined ? {} : { run }),
      ...(previous === undefined ? {} : { previous }),
    }),
  )
}

describe('attest over libp2p on a real swtpm', () => {
  it('before, during and after a run pass; each answer is fresh for its own nonce', async () => {
    const grantId = bytes()
    const ephemeralKey = bytes()
    const run = {
      runtimeDigest: bytes(),
      capsuleHeaderHash: bytes(),
      grantId,
      ephemeralPublicKey: ephemeralKey,
    }
    const before = await requestAttestation(pair.a, pair.b.peerId, { grantId, ephemeralKey })
    bootPcrs = new Map([...before.quote.pcrValues].filter(([i]) => i !== 23)) // registered once
    expect(check(before, 'before')).toBe('ok')
    expect(before.cleanup).toBeUndefined()

    await agent.beginRun(run)
    const during = await requestAttestation(pair.a, pair.b.peerId, { grantId, ephemeralKey })
    expect(check(during, 'during', run)).toBe('ok')
    expect(check(during, 'before')).toBe('QUOTE_RUN_PCR')
    // a replay of the before-evidence for this new challenge is refused
    expect(check({ ...during, quote: before.quote, eventLog: before.eventLog }, 'before')).toBe(
      'QUOTE_NONCE',
    )

    const previous = parseQuoteAttest(before.quote.attest).clockInfo
    // the executor has not cleaned up yet: PCR 23 still holds the run
    const early = await requestAttestation(pair.a, pair.b.peerId, { grantId, ephemeralKey })
    expect(check(early, 'after', undefined, previous)).toBe('QUOTE_RUN_PCR')

    await agent.endRun({ grantId, workspaceRemoved: true, keyBuffersWiped: true })
    const after = await requestAttestation(pair.a, pair.b.peerId, { grantId, ephemeralKey })
    expect(check(after, 'after', undefined, previous)).toBe('ok')
    // a clean-up report for this grant does not answer for another one
    expect(check({ ...after, grantId: bytes() }, 'after', undefined, previous)).toBe(
      'QUOTE_CLEANUP',
    )
  })

  it('refuses a dishonest clean-up report or none (fault injection: a lying executor)', async () => {
    const liar = await createPair()
    try {
      const grantId = bytes()
      const ephemeralKey = bytes()
      await agent.resetRunPcr()
      const before = await requestAttestation(pair.a, pair.b.peerId, { grantId, ephemeralKey })
      await agent.beginRun({
        runtimeDigest: bytes(),
        capsuleHeaderHash: bytes(),
        grantId,
        ephemeralPublicKey: ephemeralKey,
      })
      await agent.endRun({ grantId, workspaceRemoved: false, keyBuffersWiped: true })
      let mode: 'honest-dirty' | 'drop-report' = 'honest-dirty'
      await handle(liar.b, attestProtocol, async (c) => {
        const q = await agent.quote({
          nonce: c.nonce,
          grantId: c.grantId,
          ephemeralPublicKey: c.ephemeralKey,
        })
        if (mode === 'drop-report') delete q.cleanup
        return toWireEvidence(q)
      })
      const previous = parseQuoteAttest(before.quote.attest).clockInfo
      const dirty = await requestAttestation(liar.a, liar.b.peerId, { grantId, ephemeralKey })
      expect(check(dirty, 'after', undefined, previous)).toBe('QUOTE_CLEANUP')
      mode = 'drop-report'
      const none = await requestAttestation(liar.a, liar.b.peerId, { grantId, ephemeralKey })
      expect(check(none, 'after', undefined, previous)).toBe('QUOTE_CLEANUP')
    } finally {
      await liar.stop()
    }
  })

  it('answers internal when the TPM is gone, and serves again when it is back', async () => {
    const gone = createAttestationAgent({ tcti: 'swtpm:host=127.0.0.1,port=1', timeoutMs: 2000 })
    const other = await createPair()
    try {
      await serveAttestation(other.b, gone)
      const err = await requestAttestation(other.a, other.b.peerId, {
        grantId: bytes(),
        ephemeralKey: bytes(),
      }).catch((e: unknown) => e)
      expect((err as DigicapError).code).toBe('WIRE_REMOTE')
      expect((err as DigicapError).details.remoteCode).toBe('internal')
      const ok = await requestAttestation(pair.a, pair.b.peerId, {
        grantId: bytes(),
        ephemeralKey: bytes(),
      })
      expect(ok.quote.attest.length).toBeGreaterThan(0)
    } finally {
      await other.stop()
    }
  })

  it('a flood of challenges from several peers keeps TPM work in flight bounded; an honest challenge still passes', async () => {
    // The real agent, counted: how many quotes the handler has asked for and not yet got.
    let inFlight = 0
    let peak = 0
    const counted = {
      quote: async (args: Parameters<AttestationAgent['quote']>[0]) => {
        inFlight++
        peak = Math.max(peak, inFlight)
        try {
          return await agent.quote(args)
        } finally {
          inFlight--
        }
      },
    }
    const target = await createPair()
    const floods = await Promise.all([0, 1, 2, 3].map(() => createNode()))
    const unserveFlood = await serveAttestation(target.b, counted)
    try {
      await Promise.all(floods.map((n) => n.dial(target.b.getMultiaddrs())))
      const outcomes = await Promise.all(
        floods.flatMap((n) =>
          Array.from({ length: 12 }, () =>
            requestAttestation(n, target.b.peerId, {
              grantId: bytes(),
              ephemeralKey: bytes(),
            }).then(
              () => 'answered',
              () => 'refused',
            ),
          ),
        ),
      )
      expect(peak).toBeLessThanOrEqual(DEFAULT_ATTEST_CHALLENGES.maxTotal)
      expect(outcomes).toContain('refused')
      expect(outcomes).toContain('answered')
      const honest = await requestAttestation(target.a, target.b.peerId, {
        grantId: bytes(),
        ephemeralKey: bytes(),
      })
      expect(honest.quote.attest.length).toBeGreaterThan(0)
    } finally {
      await unserveFlood()
      await Promise.all(floods.map((n) => n.stop()))
      await target.stop()
    }
  }, 60_000)
})
