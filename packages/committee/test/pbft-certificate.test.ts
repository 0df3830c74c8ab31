import { toHex } from '@digicap/capsule-core'
import type { PbftVote } from '@digicap/protocol'
import { describe, expect, it } from 'vitest'
import {
  buildCertificate,
  CertificateError,
  EquivocationError,
  type PbftCertificate,
  pbftDomain,
  recoverVoteSigner,
  signVote,
  verifyCertificate,
  verifyEquivocation,
} from '../src/index.ts'
import {
  domain,
  evidenceHash,
  FAIL,
  jobId,
  PASS,
  paperCommittee,
  signers,
} from './pbft-fixtures.ts'

const keys = signers(7)
const committee = paperCommittee(keys.slice(0, 4)) // n = 4, f = 1, quorum 3
const outsider = keys[6]

async function commit(i: number, value = PASS, view = 0n) {
  const key = keys[i] ?? outsider
  if (key === undefined) throw new Error('no key')
  const vote = await signVote(key, domain, {
    phase: 'commit',
    jobId,
    view,
    preparedView: 0n,
    ...value,
  })
  return { signer: key.address, vote }
}

async function certificate(members: number[]): Promise<PbftCertificate> {
  return buildCertificate(domain, committee, await Promise.all(members.map((i) => commit(i))))
}

function refused(cert: PbftCertificate, reason: string, expected = { domain, jobId }) {
  let caught: unknown
  try {
    verifyCertificate(cert, committee, expected)
  } catch (err) {
    caught = err
  }
  expect(caught).toBeInstanceOf(CertificateError)
  expect((caught as CertificateError).reason).toBe(reason)
}

describe('verifyCertificate', () => {
  it('accepts 2f+1 sorted member commits and reports them sorted', async () => {
    const cert = await certificate([3, 0, 2])
    expect(cert.signers).toHaveLength(3)
    expect([...cert.signers].sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : 1))).toEqual(cert.signers)
    expect(() => verifyCertificate(cert, committee, { domain, jobId })).not.toThrow()
  })

  it('carries every member that committed, not only 2f+1: each is paid and rewarded for it', async () => {
    const cert = await certificate([3, 1, 0, 2, 1]) // all four of n = 4, one of them twice
    expect(cert.signers).toEqual(
      keys
        .slice(0, 4)
        .map((k) => k.address)
        .sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : 1)),
    )
    expect(cert.signatures).toHaveLength(4)
    expect(() => verifyCertificate(cert, committee, { domain, jobId })).not.toThrow()
  })

  it('refuses a short certificate (2f signatures)', async () => {
    const cert = await certificate([0, 1, 2])
    refused(
      { ...cert, signers: cert.signers.slice(0, 2), signatures: cert.signatures.slice(0, 2) },
      'short',
    )
  })

  it('refuses a duplicated signer (the same commit twice to reach 2f+1)', async () => {
    const cert = await certificate([0, 1, 2])
    const signers = [cert.signers[0], cert.signers[0], cert.signers[1]] as typeof cert.signers
    const signatures = [cert.signatures[0], cert.signatures[0], cert.signatures[1]] as Uint8Array[]
    refused({ ...cert, signers, signatures }, 'unsorted')
  })

  it('refuses unsorted signers', async () => {
    const cert = await certificate([0, 1, 2])
    refused(
      { ...cert, signers: [...cert.signers].reverse(), signatures: [...cert.signatures].reverse() },
      'unsorted',
    )
  })

  it('refuses a non-member signer even with a valid signature of its own', async () => {
    const members = await Promise.all([0, 1].map((i) => commit(i)))
    const stranger = await commit(6)
    const all = [...members, stranger].sort((a, b) =>
      BigInt(a.signer) < BigInt(b.signer) ? -1 : 1,
    )
    const cert: PbftCertificate = {
      ...(await certificate([0, 1, 2])),
      signers: all.map((c) => c.signer),
      signatures: all.map((c) => c.vote.signature),
    }
    refused(cert, 'non-member')
  })

  it('refuses a forged certificate: the verdict changed after signing', async () => {
    const cert = await certificate([0, 1, 2])
    refused({ ...cert, verdict: FAIL.verdict }, 'signature')
  })

  it('refuses a forged certificate: a signature swapped for another member’s', async () => {
    const cert = await certificate([0, 1, 2])
    const signatures = [cert.signatures[1], cert.signatures[1], cert.signatures[2]] as Uint8Array[]
    refused({ ...cert, signatures }, 'signature')
  })

  it('refuses a forged certificate: prepare signatures are not commits', async () => {
    const cert = await certificate([0, 1, 2])
    const prepares = await Promise.all(
      cert.signers.map((s) => {
        const key = keys.find((k) => k.address === s)
        if (key === undefined) throw new Error('no key')
        return signVote(key, domain, {
          phase: 'prepare',
          jobId,
          view: 0n,
          preparedView: 0n,
          ...PASS,
        })
      }),
    )
    refused({ ...cert, signatures: prepares.map((p) => p.signature) }, 'signature')
  })

  it('refuses a malformed (high-s, short) signature with a typed error', async () => {
    const cert = await certificate([0, 1, 2])
    const bad = [new Uint8Array(65), ...cert.signatures.slice(1)]
    refused({ ...cert, signatures: bad }, 'signature')
  })

  it('refuses the certificate of another job, chain or contract', async () => {
    const cert = await certificate([0, 1, 2])
    refused(cert, 'wrong-job', { domain, jobId: evidenceHash })
    refused(cert, 'wrong-job', { domain: pbftDomain(1n, domain.verifyingContract), jobId })
    refused(cert, 'wrong-job', {
      domain: pbftDomain(31337n, '0x0000000000000000000000000000000000000001'),
      jobId,
    })
  })

  it('refuses a certificate whose signatures were made for another chain', async () => {
    const other = pbftDomain(1n, domain.verifyingContract)
    const commits = await Promise.all(
      [0, 1, 2].map(async (i) => {
        const key = keys[i]
        if (key === undefined) throw new Error('no key')
        const vote = await signVote(key, other, {
          phase: 'commit',
          jobId,
          view: 0n,
          preparedView: 0n,
          ...PASS,
        })
        return { signer: key.address, vote }
      }),
    )
    const cert = { ...buildCertificate(other, committee, commits), chainId: domain.chainId }
    refused(cert, 'signature')
  })
})

describe('verifyEquivocation', () => {
  it('proves two commits of one member in one view with different verdicts', async () => {
    const a = (await commit(1, PASS)).vote
    const b = (await commit(1, FAIL)).vote
    const member = keys[1]?.address as string
    expect(recoverVoteSigner(domain, a)).toBe(member)
    expect(() =>
      verifyEquivocation({ member: member as `0x${string}`, a, b }, domain, committee),
    ).not.toThrow()
  })

  it.each([
    [
      'same value',
      async () => [(await commit(1)).vote, (await commit(1)).vote, 1],
      'not-conflicting',
    ],
    [
      'other views',
      async () => [(await commit(1, PASS, 0n)).vote, (await commit(1, FAIL, 1n)).vote, 1],
      'not-conflicting',
    ],
    [
      'other members',
      async () => [(await commit(1, PASS)).vote, (await commit(2, FAIL)).vote, 1],
      'signature',
    ],
    [
      'a non-member',
      async () => [(await commit(6, PASS)).vote, (await commit(6, FAIL)).vote, 6],
      'non-member',
    ],
  ] as const)('refuses %s', async (_name, make, reason) => {
    const [a, b, who] = (await make()) as [PbftVote, PbftVote, number]
    const member = (keys[who as number]?.address ?? '') as `0x${string}`
    let caught: unknown
    try {
      verifyEquivocation({ member, a, b }, domain, committee)
    } catch (err) {
      caught = err
    }
    expect(caught).toBeInstanceOf(EquivocationError)
    expect((caught as EquivocationError).reason).toBe(reason)
  })

  it('refuses view changes as evidence (they may repeat)', async () => {
    const key = keys[1]
    if (key === undefined) throw new Error('no key')
    const a = await signVote(key, domain, {
      phase: 'view-change',
      jobId,
      view: 1n,
      preparedView: 0n,
      verdict: 0,
      evidenceHash: new Uint8Array(32),
    })
    const b = await signVote(key, domain, {
      phase: 'view-change',
      jobId,
      view: 1n,
      preparedView: 1n,
      ...PASS,
    })
    expect(() => verifyEquivocation({ member: key.address, a, b }, domain, committee)).toThrow(
      EquivocationError,
    )
    expect(toHex(a.jobId)).toBe(toHex(jobId))
  })
})
