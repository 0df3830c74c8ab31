/**
 * ADR 0053 on four real libp2p nodes (TCP + noise + yamux on loopback): what a decision costs a
 * member besides the protocol itself. Frames are written and read with no abort signal built per
 * frame (a timeout signal per frame lived for its timeout after the frame), and with
 * `certificate: 'on-request'` only the submitter checks signatures: 2f + 1 for the whole
 * committee's decision.
 */
import { keccak_256 } from '@noble/hashes/sha3.js'
import { describe, expect, it } from 'vitest'
import { verifyCertificate } from '../src/index.ts'
import { signatureChecks } from '../src/pbft/signature-check.ts'
import { domain, jobId, pbftNetwork, signers } from './pbft-fixtures.ts'

const net = pbftNetwork()
const keys = signers(4)

describe('a decision on real libp2p nodes', () => {
  it('writes and reads its 27 frames with no abort signal built per frame', async () => {
    await net.mesh(keys)
    for (let i = 0; i < 4; i++) await net.member(i)
    // Abort signals built by the PBFT write path (mux.ts) and the frame reader (readMessages);
    // libp2p builds its own per stream, not per frame.
    const ours = /pbft\/mux\.ts|readMessages|sendMessage/
    let built = 0
    const count = <A extends unknown[], R>(f: (...a: A) => R) =>
      function (this: unknown, ...args: A): R {
        if (ours.test(new Error().stack ?? '')) built++
        return f.apply(this, args)
      }
    const timeout = AbortSignal.timeout
    const any = AbortSignal.any
    AbortSignal.timeout = count(timeout)
    AbortSignal.any = count(any)
    try {
      expect(await net.decide()).toHaveLength(4)
    } finally {
      AbortSignal.timeout = timeout
      AbortSignal.any = any
    }
    // 12 kept streams (one per member and peer) carry the 27 frames: at most one signal per
    // stream. The old path built 2 per frame written and 1–2 per frame read (about 90).
    expect(built).toBeLessThanOrEqual(12)
  })

  it('on request: the members decide, and only the submitter checks 2f + 1 signatures', async () => {
    // A job of its own: answered signatures are cached per process.
    const job = keccak_256(new TextEncoder().encode('frames-on-request'))
    const { committee } = await net.mesh(keys)
    const members = []
    for (let i = 0; i < 4; i++) {
      members.push(await net.member(i, { jobId: job, certificate: 'on-request' }))
    }
    const before = signatureChecks()
    const submitter = members[0]?.replica.certify()
    await Promise.all(members.map((m) => m.start()))
    const verdicts = await Promise.all(members.map((m) => m.replica.verdict))
    for (const v of verdicts) expect(v).toMatchObject({ view: 0n, verdict: 7 })
    const certificate = await submitter
    // The whole process (four members, one cache of checked signatures) checked each member's
    // observation once (ADR 0087: they justify the verdict), the submitter's 2f + 1 commits,
    // nothing else.
    expect(signatureChecks() - before).toBe(4 + committee.quorum)
    verifyCertificate(certificate as NonNullable<typeof certificate>, committee, {
      domain,
      jobId: job,
    })
    for (const m of members.slice(1)) expect(m.replica.certificate).toBeUndefined()
    expect(jobId).not.toEqual(job)
  })
})
