/**
 * ADR 0095 in one watch (real swtpm, real libp2p on loopback): the executor withholds the during
 * quote from this member; another member ("colleague", challenging with its own signed nonces)
 * got it. Before the colleague's genuine forward, a colluder sent two copies under the same
 * signed challenge: one with the quote's bytes altered, one claiming during for a before quote.
 * The watch refuses both by reason (`evidence`, `wrong-phase`), still judges the genuine copy
 * (each kept answer once, not each nonce once) and counts it; its own before and after stay its
 * own and are handed on for forwarding.
 */
import { randomBytes } from 'node:crypto'
import {
  attestationRecordHash,
  createActivationCache,
  decodeAttestationRecord,
  encodeAttestationRecord,
  toWireEvidence,
} from '@digicap/attestation'
import {
  type AttestationAgent,
  createAttestationAgent,
  serveAttestation,
} from '@digicap/attestation/agent'
import { equalBytes, privateKeySigner, requestMeasurement, toHex } from '@digicap/capsule-core'
import { attestChallengeNonce, pbftDomain, signAttestChallenge } from '@digicap/committee'
import { startSwtpm } from '@digicap/keyguard/testing'
import { createDigicapNode } from '@digicap/p2p'
import type { AttestForward } from '@digicap/protocol'
import { expect, it } from 'vitest'
import { holdPhasesForQuotes } from '../src/node/phase-hold.ts'
import type { ForwardRefusedError } from '../src/node/verifier/errors.ts'
import type { ForwardedAnswer } from '../src/node/verifier/forwarding.ts'
import { watchRun } from '../src/node/verifier/watch-run.ts'

const bytes = (n = 32) => new Uint8Array(randomBytes(n))
const domain = pbftDomain(31337n, '0x5FbDB2315678afecb367f032d93F642f64180aa3')
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

it('a withheld during is taken from the genuine forward after a corrupted copy and a wrong-phase copy of the same challenge are refused', async () => {
  const tpm = await startSwtpm()
  const [exec, verifier] = await Promise.all([createDigicapNode(), createDigicapNode()])
  try {
    await verifier.libp2p.dial(exec.libp2p.getMultiaddrs())
    const agent = createAttestationAgent({ tcti: tpm.tcti })
    const keys = await agent.provision()
    await agent.resetRunPcr()
    const q = await agent.quote({ nonce: bytes(), grantId: bytes(), ephemeralPublicKey: bytes() })
    const recordBytes = encodeAttestationRecord({
      ...keys,
      bootPcrs: new Map([...q.pcrValues].filter(([i]) => i !== 23)),
    })
    const g = {
      runtimeDigest: bytes(),
      capsuleHeaderHash: bytes(),
      grantId: bytes(),
      ephemeralPublicKey: bytes(),
    }
    const me = verifier.libp2p.peerId.toString()
    const measured = (quote: Awaited<ReturnType<AttestationAgent['quote']>>) =>
      (quote.eventLog.at(-1)?.kind ?? 'reset') !== 'reset' &&
      !(quote.cleanup !== undefined && equalBytes(quote.cleanup.grantId, g.grantId))
    // The executor withholds its during quotes from this member (fault injection).
    const withholding: AttestationAgent = {
      ...agent,
      quote: async (binding, from) => {
        const quote = await agent.quote(binding, from)
        if (from?.peer === me && measured(quote)) throw new Error('withheld (test fault)')
        return quote
      },
    }
    const holding = holdPhasesForQuotes(withholding, 20_000, { challengers: 2, graceMs: 1500 })
    await serveAttestation(exec.libp2p, holding.served, { record: recordBytes })

    const colleagueKey = toHex(bytes()) as `0x${string}`
    const colleague = privateKeySigner(colleagueKey)
    const during: ForwardedAnswer[] = []
    // The colleague challenges in process (as a second member) until it has a during quote.
    const colleagueWatch = (async () => {
      let beforeCopy: AttestForward | undefined
      for (let seq = 0n; ; seq++) {
        const signed = await signAttestChallenge(colleague, domain, {
          jobId: g.grantId,
          blockHash: bytes(),
          seq,
        })
        const nonce = attestChallengeNonce(signed.signature)
        const quote = await holding.served.quote(
          { nonce, grantId: g.grantId, ephemeralPublicKey: g.ephemeralPublicKey },
          { peer: 'colleague' },
        )
        const forward = (phase: 'before' | 'during'): AttestForward => ({
          jobId: g.grantId,
          blockHash: signed.blockHash,
          seq,
          challengeSignature: signed.signature,
          phase,
          evidence: toWireEvidence(quote),
        })
        const answer = (f: AttestForward, sender: string): ForwardedAnswer => ({
          challenger: colleague.address,
          sender,
          forward: f,
          nonce: attestChallengeNonce(f.challengeSignature),
        })
        if (!measured(quote)) {
          beforeCopy ??= forward('during')
        } else {
          const genuine = forward('during')
          const attest = genuine.evidence.attest.slice()
          attest[attest.length - 1] = (attest[attest.length - 1] as number) ^ 1
          // The colluder's copies came first: same challenge, altered quote; and a before quote
          // forwarded as during. Then the colleague's own.
          during.push(answer({ ...genuine, evidence: { ...genuine.evidence, attest } }, 'colluder'))
          if (beforeCopy !== undefined) during.push(answer(beforeCopy, 'colluder'))
          during.push(answer(genuine, 'colleague'))
          return
        }
        await sleep(100)
      }
    })()
    const executor = (async () => {
      await holding.run.measureRun(g)
      await colleagueWatch
      await holding.run.endRun({
        grantId: g.grantId,
        workspaceRemoved: true,
        keyBuffersWiped: true,
      })
    })()
    const refused: ForwardRefusedError[] = []
    const handedOn: string[] = []
    const mine = privateKeySigner(toHex(bytes()) as `0x${string}`)
    let seq = 0n
    const watched = await watchRun({
      libp2p: verifier.libp2p,
      peer: exec.libp2p.peerId,
      jobId: g.grantId,
      grant: {
        measurement: requestMeasurement(g.runtimeDigest, g.capsuleHeaderHash),
        ephemeralKey: g.ephemeralPublicKey,
        executor: '0x0000000000000000000000000000000000000000',
      },
      registeredHash: attestationRecordHash(recordBytes),
      activations: createActivationCache(),
      watchMs: 20_000,
      everyMs: 150,
      forwarding: {
        challenge: () =>
          signAttestChallenge(mine, domain, { jobId: g.grantId, blockHash: bytes(), seq: seq++ }),
        verified: (phase) => handedOn.push(phase),
        answers: (phase) => (phase === 'during' ? during : []),
        onRefused: (err) => refused.push(err),
        waitMs: 3000,
      },
    })
    await executor
    expect(watched.phases.map((p) => [p.phase, p.verdict, p.forwardedBy])).toEqual([
      ['before', 'verified', undefined],
      ['during', 'verified', colleague.address],
      ['after', 'verified', undefined],
    ])
    expect(refused.map((e) => e.reason)).toEqual(['evidence', 'wrong-phase'])
    expect(refused[0]?.details).toMatchObject({ check: 'QUOTE_SIGNATURE' })
    expect(refused[1]?.details).toMatchObject({ claimed: 'during', shown: 'before' })
    // Only its own verified answers are handed on to forward.
    expect(handedOn).toEqual(['before', 'after'])
  } finally {
    await Promise.all([exec.stop(), verifier.stop()])
    await tpm.stop()
  }
}, 90_000)

it('forwarded answers are counted only in run order on one boot: a post-run quote stripped of its clean-up report is no before (review 135)', async () => {
  const tpm = await startSwtpm()
  const [exec, verifier] = await Promise.all([createDigicapNode(), createDigicapNode()])
  try {
    const agent = createAttestationAgent({ tcti: tpm.tcti })
    const keys = await agent.provision()
    await agent.resetRunPcr()
    const q = await agent.quote({ nonce: bytes(), grantId: bytes(), ephemeralPublicKey: bytes() })
    const recordBytes = encodeAttestationRecord({
      ...keys,
      bootPcrs: new Map([...q.pcrValues].filter(([i]) => i !== 23)),
    })
    const g = {
      runtimeDigest: bytes(),
      capsuleHeaderHash: bytes(),
      grantId: bytes(),
      ephemeralPublicKey: bytes(),
    }
    // The executor answers this member nothing (it does not even serve the protocol): every
    // phase it gets comes from the colluder, who signs its own challenges.
    const colluder = privateKeySigner(toHex(bytes()) as `0x${string}`)
    let seq = 0n
    const take = async (phase: 'before' | 'during' | 'after', strip = false) => {
      const signed = await signAttestChallenge(colluder, domain, {
        jobId: g.grantId,
        blockHash: bytes(),
        seq: seq++,
      })
      const nonce = attestChallengeNonce(signed.signature)
      const quote = await agent.quote({
        nonce,
        grantId: g.grantId,
        ephemeralPublicKey: g.ephemeralPublicKey,
      })
      const { cleanup: _dropped, ...stripped } = quote
      const forward: AttestForward = {
        jobId: g.grantId,
        blockHash: signed.blockHash,
        seq: signed.seq,
        challengeSignature: signed.signature,
        phase,
        evidence: toWireEvidence(strip ? stripped : quote),
      }
      return { challenger: colluder.address, sender: 'colluder', forward, nonce }
    }
    await agent.measureRun(g)
    const during = await take('during')
    await sleep(20) // the TPM clock moves on
    await agent.endRun({ grantId: g.grantId, workspaceRemoved: true, keyBuffersWiped: true })
    // Taken after the run: PCR 23 is reset and, without its clean-up report, it reads as a before.
    const lateBefore = await take('before', true)
    await sleep(20)
    const after = await take('after')
    const answers = { before: [lateBefore], during: [during], after: [after] }
    const refused: ForwardRefusedError[] = []
    const activations = createActivationCache()
    const registeredHash = attestationRecordHash(recordBytes)
    activations.add(registeredHash)
    let mySeq = 0n
    const mine = privateKeySigner(toHex(bytes()) as `0x${string}`)
    const watched = await watchRun({
      libp2p: verifier.libp2p,
      peer: exec.libp2p.peerId,
      jobId: g.grantId,
      grant: {
        measurement: requestMeasurement(g.runtimeDigest, g.capsuleHeaderHash),
        ephemeralKey: g.ephemeralPublicKey,
        executor: '0x0000000000000000000000000000000000000000',
      },
      registeredHash,
      record: decodeAttestationRecord(recordBytes),
      activations,
      watchMs: 3000,
      everyMs: 100,
      forwarding: {
        challenge: () =>
          signAttestChallenge(mine, domain, {
            jobId: g.grantId,
            blockHash: bytes(),
            seq: mySeq++,
          }),
        verified: () => {},
        answers: (phase) => answers[phase],
        onRefused: (err) => refused.push(err),
        waitMs: 0,
      },
    })
    // The late before alone verifies; the during taken before it is refused (its TPM clock is
    // earlier), so the phase is missed: a fail claim, never a pass built from out-of-order quotes.
    expect(watched.phases.map((p) => [p.phase, p.verdict])).toEqual([
      ['before', 'verified'],
      ['during', 'missed'],
      ['after', 'missed'],
    ])
    expect(refused.map((e) => [e.reason, (e.details as { check?: string }).check])).toEqual([
      ['evidence', 'QUOTE_CLOCK'],
    ])
  } finally {
    await Promise.all([exec.stop(), verifier.stop()])
    await tpm.stop()
  }
}, 60_000)
