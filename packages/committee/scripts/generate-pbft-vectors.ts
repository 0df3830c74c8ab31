/**
 * Generates `packages/protocol/test/pbft-vectors/*.txt`, the vectors of `/digicap/pbft/1.0.0`
 * (protocol SPEC-PBFT.md §8), in the format of protocol SPEC.md §8. The codec lives in
 * `@digicap/protocol`; the EIP-712 digests and signatures need this package, so the generator
 * is here. Deterministic: fixed keys (keccak("member-i")), RFC 6979 signatures.
 *
 * Run `node scripts/generate-pbft-vectors.ts` to rewrite them; `test/pbft-vectors.test.ts`
 * fails when the files drift from this script.
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { type DigicapSigner, privateKeySigner, toHex } from '@digicap/capsule-core'
import {
  encodeFrame,
  encodePbftMessage,
  PBFT_MAX_FRAME,
  PBFT_PROTOCOL,
  type PbftMessage,
  type PbftVote,
} from '@digicap/protocol'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { encode } from 'cborg'
import { pbftDomain, signVote, type UnsignedVote, voteDigest } from '../src/index.ts'

export const PBFT_VECTOR_DIR = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  'protocol',
  'test',
  'pbft-vectors',
)

const text = (s: string) => keccak_256(new TextEncoder().encode(s))
export const VECTOR_DOMAIN = pbftDomain(31337n, '0x5FbDB2315678afecb367f032d93F642f64180aa3')
export const VECTOR_KEYS: DigicapSigner[] = [0, 1, 2, 3].map((i) =>
  privateKeySigner(text(`member-${i}`)),
)
const jobId = text('job-1')
const evidenceHash = text('evidence-1')
const ZERO = new Uint8Array(32)

interface Vector {
  name: string
  expect: string
  field?: string
  comment: string
  body: Uint8Array
  /** For ok vectors: the signer of the top-level vote and its EIP-712 digest. */
  signed?: PbftVote
  signer?: string
}

function wireVote(v: PbftVote): Record<string, unknown> {
  const m: Record<string, unknown> = {
    phase: v.phase,
    jobId: v.jobId,
    view: Number(v.view),
    verdict: v.verdict,
    evidenceHash: v.evidenceHash,
    signature: v.signature,
  }
  if (v.phase === 'view-change') m.preparedView = Number(v.preparedView)
  return m
}

/** A body from plain maps (cborg sorts keys canonically), for the malformed cases. */
const raw = (vote: Record<string, unknown>, rest: Record<string, unknown> = {}) =>
  encode({ v: 1, t: 'pbft', vote, proof: [], ...rest })

export async function generatePbftVectors(): Promise<Map<string, string>> {
  const sign = (i: number, vote: UnsignedVote) =>
    signVote(VECTOR_KEYS[i] as DigicapSigner, VECTOR_DOMAIN, vote)
  const value = { jobId, view: 0n, preparedView: 0n, verdict: 7, evidenceHash }
  const prePrepare = await sign(0, { phase: 'pre-prepare', ...value })
  const prepares = await Promise.all([0, 1, 2].map((i) => sign(i, { phase: 'prepare', ...value })))
  const commit = await sign(2, { phase: 'commit', ...value })
  const failCommit = await sign(3, { phase: 'commit', ...value, verdict: 6 })
  const vcNone = await sign(3, {
    phase: 'view-change',
    jobId,
    view: 1n,
    preparedView: 0n,
    verdict: 0,
    evidenceHash: ZERO,
  })
  const vcPrepared = await sign(2, {
    phase: 'view-change',
    jobId,
    view: 1n,
    preparedView: 1n,
    verdict: 7,
    evidenceHash,
  })
  const vcs = await Promise.all(
    [1, 2, 3].map((i) =>
      sign(i, {
        phase: 'view-change',
        jobId,
        view: 1n,
        preparedView: 1n,
        verdict: 7,
        evidenceHash,
      }),
    ),
  )
  const newView = await sign(1, {
    phase: 'pre-prepare',
    jobId,
    view: 1n,
    preparedView: 0n,
    verdict: 7,
    evidenceHash,
  })
  // Members 0 and 1 saw the whole run, 2 and 3 missed the during quote (ADR 0087).
  const observations = await Promise.all(
    [7, 7, 5, 5].map((verdict, i) =>
      sign(i, {
        phase: 'observation',
        ...value,
        verdict,
        evidenceHash: text(`evidence-${verdict}`),
      }),
    ),
  )
  const justified = await sign(0, {
    phase: 'pre-prepare',
    ...value,
    verdict: 5,
    evidenceHash: text('evidence-5'),
  })
  const ok = (name: string, comment: string, message: PbftMessage, signer: number): Vector => ({
    name,
    expect: 'ok',
    comment,
    body: encodePbftMessage(message),
    signed: message.vote,
    signer: (VECTOR_KEYS[signer] as DigicapSigner).address,
  })
  const p = wireVote(prepares[1] as PbftVote)
  const vectors: Vector[] = [
    ok(
      'pre-prepare',
      'the view-0 leader (member 0) proposes verdict 7 (all phases passed)',
      { vote: prePrepare, proof: [] },
      0,
    ),
    ok(
      'prepare',
      'member 1 prepares the proposal',
      { vote: prepares[1] as PbftVote, proof: [] },
      1,
    ),
    ok(
      'commit',
      'member 2 commits it: the signature a certificate carries',
      { vote: commit, proof: [] },
      2,
    ),
    ok(
      'commit-fail',
      'member 3 commits verdict 6 (the before phase failed)',
      { vote: failCommit, proof: [] },
      3,
    ),
    ok(
      'view-change-none',
      'member 3 asks for view 1 having prepared nothing',
      { vote: vcNone, proof: [] },
      3,
    ),
    ok(
      'view-change-prepared',
      'member 2 asks for view 1 and shows the value it prepared in view 0 with 2f+1 prepares',
      { vote: vcPrepared, proof: prepares },
      2,
    ),
    ok(
      'observation',
      'member 2 saw the before and after phases pass and the during quote missed (verdict 5)',
      { vote: observations[2] as PbftVote, proof: [] },
      2,
    ),
    ok(
      'pre-prepare-justified',
      'the view-0 leader proposes verdict 5 with the four observations: during has f+1 = 2 fail claims',
      { vote: justified, proof: observations },
      0,
    ),
    ok(
      'new-view',
      'the view-1 leader (member 1) proposes with 2f+1 view changes',
      { vote: newView, proof: vcs },
      1,
    ),
    {
      name: 'short-signature',
      expect: 'WIRE_FORMAT',
      field: 'signature',
      comment: 'a 64-byte signature',
      body: raw({ ...p, signature: new Uint8Array(64) }),
    },
    {
      name: 'verdict-8',
      expect: 'WIRE_FORMAT',
      field: 'verdict',
      comment: 'verdict 8 (only bits 0-2 exist)',
      body: raw({ ...p, verdict: 8 }),
    },
    {
      name: 'unknown-phase',
      expect: 'WIRE_FORMAT',
      field: 'phase',
      comment: 'phase "reply"',
      body: raw({ ...p, phase: 'reply' }),
    },
    {
      name: 'short-job-id',
      expect: 'WIRE_FORMAT',
      field: 'jobId',
      comment: 'jobId is 31 bytes',
      body: raw({ ...p, jobId: new Uint8Array(31) }),
    },
    {
      name: 'prepare-with-prepared-view',
      expect: 'WIRE_FORMAT',
      field: 'preparedView',
      comment: 'preparedView belongs to view changes only',
      body: raw({ ...p, preparedView: 0 }),
    },
    {
      name: 'view-change-missing-prepared-view',
      expect: 'WIRE_FORMAT',
      field: 'preparedView',
      comment: 'a view change without preparedView',
      body: raw({ ...p, phase: 'view-change' }),
    },
    {
      name: 'view-change-later-prepared',
      expect: 'WIRE_FORMAT',
      field: 'preparedView',
      comment: 'prepared in view 1 (preparedView 2) while asking for view 1',
      body: raw({ ...wireVote(vcPrepared), preparedView: 2 }),
    },
    {
      name: 'missing-proof',
      expect: 'WIRE_FORMAT',
      field: 'proof',
      comment: 'no proof array',
      body: encode({ v: 1, t: 'pbft', vote: p }),
    },
    {
      name: 'proof-not-array',
      expect: 'WIRE_FORMAT',
      field: 'proof',
      comment: 'proof is a map',
      body: raw(p, { proof: p }),
    },
    {
      name: 'proof-too-long',
      expect: 'WIRE_FORMAT',
      field: 'proof',
      comment: '129 proof votes (at most 128)',
      body: raw(p, { proof: Array.from({ length: 129 }, () => p) }),
    },
    {
      name: 'vote-not-map',
      expect: 'WIRE_FORMAT',
      field: 'vote',
      comment: 'vote is a byte string',
      body: encode({ v: 1, t: 'pbft', vote: new Uint8Array(4), proof: [] }),
    },
    {
      name: 'version-2',
      expect: 'WIRE_VERSION',
      comment: 'v is 2',
      body: encode({ v: 2, t: 'pbft', vote: p, proof: [] }),
    },
    {
      name: 'other-type',
      expect: 'WIRE_FORMAT',
      field: 't',
      comment: 't is attest-challenge',
      body: encode({ v: 1, t: 'attest-challenge', vote: p, proof: [] }),
    },
  ]
  const out = new Map<string, string>()
  for (const v of vectors) {
    const frame = toHex(encodeFrame(v.body)).slice(2)
    const lines = [
      `protocol: ${PBFT_PROTOCOL}`,
      'type: pbft',
      `max-size: ${PBFT_MAX_FRAME}`,
      `expect: ${v.expect}`,
      ...(v.field === undefined ? [] : [`field: ${v.field}`]),
      `comment: ${v.comment}`,
      ...(v.signed === undefined
        ? []
        : [
            `domain: chainId ${VECTOR_DOMAIN.chainId}, verifyingContract ${VECTOR_DOMAIN.verifyingContract}`,
            `digest: ${toHex(voteDigest(VECTOR_DOMAIN, v.signed))}`,
            `signer: ${v.signer}`,
          ]),
      '',
      ...(frame.match(/.{1,64}/g) ?? ['']),
      '',
    ]
    out.set(`${v.name}.txt`, lines.join('\n'))
  }
  return out
}

if (import.meta.main) {
  mkdirSync(PBFT_VECTOR_DIR, { recursive: true })
  for (const f of readdirSync(PBFT_VECTOR_DIR)) rmSync(join(PBFT_VECTOR_DIR, f))
  const vectors = await generatePbftVectors()
  for (const [name, content] of vectors) writeFileSync(join(PBFT_VECTOR_DIR, name), content)
  console.log(`wrote ${vectors.size} vectors to ${PBFT_VECTOR_DIR}`)
}
