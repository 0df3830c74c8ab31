/**
 * Generates `test/attest-vectors/*.txt`, the vectors of `/digicap/attest/1.0.0`
 * (SPEC-ATTEST.md), in the format of SPEC.md §8. Deterministic (fixed byte patterns: the
 * quote bytes are opaque to this codec; `@digicap/attestation` checks real ones).
 *
 * Run `node scripts/generate-attest-vectors.ts` to rewrite them;
 * `test/attest-vectors.test.ts` fails when the files drift from this script.
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  addressFromPrivateKey,
  hashTypedData,
  toHex as hex0x,
  signDigest,
} from '@digicap/capsule-core'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { encode } from 'cborg'
import {
  ATTEST_FORWARD_PROTOCOL,
  ATTEST_PROTOCOL,
  type AttestForward,
  encodeAttestActivate,
  encodeAttestActivated,
  encodeAttestChallenge,
  encodeAttestEvidence,
  encodeAttestForward,
  encodeAttestForwarded,
  encodeFrame,
  MAX_CONTROL_FRAME,
} from '../src/index.ts'
import { toHex } from './generate-vectors.ts'

export const ATTEST_VECTOR_DIR = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  'test',
  'attest-vectors',
)

const seq = (n: number, start: number): Uint8Array =>
  Uint8Array.from({ length: n }, (_, i) => (start + i) & 0xff)

export const VECTOR_CHALLENGE = {
  nonce: seq(32, 0x10),
  grantId: seq(32, 0x40),
  ephemeralKey: seq(32, 0x80),
}
/** A DGEL v1 log with one reset event. */
const RESET_LOG = Uint8Array.from([0x44, 0x47, 0x45, 0x4c, 1, 0, 1, 0, ...new Uint8Array(32)])
export const VECTOR_EVIDENCE = {
  attest: Uint8Array.from([0xff, 0x54, 0x43, 0x47, 0x80, 0x18, ...seq(139, 0)]),
  signature: Uint8Array.from([0x00, 0x14, 0x00, 0x0b, 0x01, 0x00, ...seq(256, 7)]),
  pcrValues: seq(288, 0xa0),
  eventLog: RESET_LOG,
}

/** Shaped like MakeCredential's output for an RSA-2048 EK (sizes included; bytes are patterns). */
export const VECTOR_ACTIVATE = {
  idObject: Uint8Array.from([0x00, 0x44, 0x00, 0x20, ...seq(66, 0x21)]),
  encryptedSecret: Uint8Array.from([0x01, 0x00, ...seq(256, 0x61)]),
}

interface Vector {
  name: string
  type:
    | 'attest-challenge'
    | 'attest-evidence'
    | 'attest-activate'
    | 'attest-activated'
    | 'attest-forward'
    | 'attest-forwarded'
  expect: string
  field?: string
  comment: string
  body: Uint8Array
  /** Extra header lines (the signed challenge of an ok forward). */
  extra?: string[]
}

const text = (s: string) => keccak_256(new TextEncoder().encode(s))
/** The PBFT domain of the vectors (SPEC-PBFT §8's). */
export const VECTOR_FORWARD_DOMAIN = {
  chainId: 31337n,
  verifyingContract: '0x5FbDB2315678afecb367f032d93F642f64180aa3' as const,
}
/** The challenger: member 0 of SPEC-PBFT §8, key keccak256("member-0"). */
export const VECTOR_CHALLENGER_KEY = text('member-0')
/** The signed challenge of the ok forward: job keccak256("job-1"), block keccak256("block-1"), seq 3. */
export const VECTOR_SIGNED_CHALLENGE = (() => {
  const jobId = text('job-1')
  const blockHash = text('block-1')
  const seq = 3n
  const digest = hashTypedData({
    domain: { name: 'DigicapPbft', version: '1', ...VECTOR_FORWARD_DOMAIN },
    types: {
      AttestChallenge: [
        { name: 'jobId', type: 'bytes32' },
        { name: 'blockHash', type: 'bytes32' },
        { name: 'seq', type: 'uint64' },
      ],
    },
    primaryType: 'AttestChallenge',
    message: { jobId: hex0x(jobId), blockHash: hex0x(blockHash), seq },
  })
  const signature = signDigest(digest, VECTOR_CHALLENGER_KEY)
  return { jobId, blockHash, seq, digest, signature, nonce: keccak_256(signature) }
})()
/** An ok forward: the during-phase answer to {@link VECTOR_SIGNED_CHALLENGE}. */
export const VECTOR_FORWARD: AttestForward = {
  jobId: VECTOR_SIGNED_CHALLENGE.jobId,
  blockHash: VECTOR_SIGNED_CHALLENGE.blockHash,
  seq: VECTOR_SIGNED_CHALLENGE.seq,
  challengeSignature: VECTOR_SIGNED_CHALLENGE.signature,
  phase: 'during',
  evidence: VECTOR_EVIDENCE,
}

/** A body from a plain map (cborg sorts keys canonically), for the malformed cases. */
const raw = (map: Record<string, unknown>) => encode(map)

export function generateAttestVectors(): Map<string, string> {
  const c = { v: 1, t: 'attest-challenge', ...VECTOR_CHALLENGE }
  const e = { v: 1, t: 'attest-evidence', ...VECTOR_EVIDENCE }
  const act = { v: 1, t: 'attest-activate', ...VECTOR_ACTIVATE }
  const done = { v: 1, t: 'attest-activated', secret: seq(32, 0xc0) }
  const cleanup = { cleanupGrantId: seq(32, 0x40), workspaceRemoved: true, keyBuffersWiped: true }
  const vectors: Vector[] = [
    {
      name: 'challenge',
      type: 'attest-challenge',
      expect: 'ok',
      comment: 'nonce, grant id and ephemeral key, 32 bytes each',
      body: encodeAttestChallenge(VECTOR_CHALLENGE),
    },
    {
      name: 'evidence-before',
      type: 'attest-evidence',
      expect: 'ok',
      comment: 'a quote before any run: no clean-up report, the log is one reset',
      body: encodeAttestEvidence(VECTOR_EVIDENCE),
    },
    {
      name: 'evidence-after',
      type: 'attest-evidence',
      expect: 'ok',
      comment: 'a quote after a run, with the clean-up report',
      body: encodeAttestEvidence({
        ...VECTOR_EVIDENCE,
        cleanup: { grantId: seq(32, 0x40), workspaceRemoved: true, keyBuffersWiped: true },
      }),
    },
    {
      name: 'evidence-with-record',
      type: 'attest-evidence',
      expect: 'ok',
      comment: 'evidence that carries the attestation record (opaque bytes here)',
      body: encodeAttestEvidence({ ...VECTOR_EVIDENCE, record: seq(300, 0x30) }),
    },
    {
      name: 'evidence-after-dirty',
      type: 'attest-evidence',
      expect: 'ok',
      comment:
        'a clean-up report that admits the workspace is still there (well-formed; the after verdict refuses it)',
      body: encodeAttestEvidence({
        ...VECTOR_EVIDENCE,
        cleanup: { grantId: seq(32, 0x40), workspaceRemoved: false, keyBuffersWiped: true },
      }),
    },
    {
      name: 'challenge-short-nonce',
      type: 'attest-challenge',
      expect: 'WIRE_FORMAT',
      field: 'nonce',
      comment: 'nonce is 31 bytes',
      body: raw({ ...c, nonce: seq(31, 0x10) }),
    },
    {
      name: 'challenge-long-key',
      type: 'attest-challenge',
      expect: 'WIRE_FORMAT',
      field: 'ephemeralKey',
      comment: 'ephemeralKey is 33 bytes (an SEC1 compressed key is not an X25519 key)',
      body: raw({ ...c, ephemeralKey: seq(33, 0x80) }),
    },
    {
      name: 'challenge-missing-grant',
      type: 'attest-challenge',
      expect: 'WIRE_FORMAT',
      field: 'grantId',
      comment: 'no grantId',
      body: raw({ v: 1, t: 'attest-challenge', nonce: c.nonce, ephemeralKey: c.ephemeralKey }),
    },
    {
      name: 'challenge-unknown-field',
      type: 'attest-challenge',
      expect: 'WIRE_FORMAT',
      field: 'pcrs',
      comment: 'an extra field (a verifier cannot choose the PCRs)',
      body: raw({ ...c, pcrs: seq(3, 0) }),
    },
    {
      name: 'challenge-version-2',
      type: 'attest-challenge',
      expect: 'WIRE_VERSION',
      comment: 'v is 2',
      body: raw({ ...c, v: 2 }),
    },
    {
      name: 'challenge-as-evidence',
      type: 'attest-challenge',
      expect: 'WIRE_FORMAT',
      field: 't',
      comment: 'an attest-evidence where a challenge is expected',
      body: encodeAttestEvidence(VECTOR_EVIDENCE),
    },
    {
      name: 'evidence-short-pcrs',
      type: 'attest-evidence',
      expect: 'WIRE_FORMAT',
      field: 'pcrValues',
      comment: 'pcrValues is 287 bytes (9 PCRs are 288)',
      body: raw({ ...e, pcrValues: seq(287, 0) }),
    },
    {
      name: 'evidence-long-attest',
      type: 'attest-evidence',
      expect: 'WIRE_FORMAT',
      field: 'attest',
      comment: 'attest is 1025 bytes',
      body: raw({ ...e, attest: seq(1025, 0) }),
    },
    {
      name: 'evidence-empty-signature',
      type: 'attest-evidence',
      expect: 'WIRE_FORMAT',
      field: 'signature',
      comment: 'signature is empty',
      body: raw({ ...e, signature: new Uint8Array(0) }),
    },
    {
      name: 'evidence-long-event-log',
      type: 'attest-evidence',
      expect: 'WIRE_FORMAT',
      field: 'eventLog',
      comment: 'eventLog is 2120 bytes (64 events are 2119)',
      body: raw({ ...e, eventLog: seq(2120, 0) }),
    },
    {
      name: 'evidence-long-record',
      type: 'attest-evidence',
      expect: 'WIRE_FORMAT',
      field: 'record',
      comment: 'record is 6412 bytes (at most 6411)',
      body: raw({ ...e, record: seq(6412, 0) }),
    },
    {
      name: 'evidence-partial-cleanup',
      type: 'attest-evidence',
      expect: 'WIRE_FORMAT',
      field: 'keyBuffersWiped',
      comment: 'a clean-up report without keyBuffersWiped',
      body: raw({ ...e, cleanupGrantId: cleanup.cleanupGrantId, workspaceRemoved: true }),
    },
    {
      name: 'evidence-cleanup-not-bool',
      type: 'attest-evidence',
      expect: 'WIRE_FORMAT',
      field: 'workspaceRemoved',
      comment: 'workspaceRemoved is the integer 1',
      body: raw({ ...e, ...cleanup, workspaceRemoved: 1 }),
    },
    {
      name: 'evidence-short-cleanup-grant',
      type: 'attest-evidence',
      expect: 'WIRE_FORMAT',
      field: 'cleanupGrantId',
      comment: 'cleanupGrantId is 31 bytes',
      body: raw({ ...e, ...cleanup, cleanupGrantId: seq(31, 0) }),
    },
    {
      name: 'activate',
      type: 'attest-activate',
      expect: 'ok',
      comment:
        "MakeCredential's id object and encrypted secret for the registered EK and the AK's name",
      body: encodeAttestActivate(VECTOR_ACTIVATE),
    },
    {
      name: 'activated',
      type: 'attest-activated',
      expect: 'ok',
      comment: 'the 32-byte secret TPM2_ActivateCredential recovered',
      body: encodeAttestActivated({ secret: done.secret }),
    },
    {
      name: 'activate-long-secret',
      type: 'attest-activate',
      expect: 'WIRE_FORMAT',
      field: 'encryptedSecret',
      comment: 'encryptedSecret is 1025 bytes (at most 1024)',
      body: raw({ ...act, encryptedSecret: seq(1025, 0) }),
    },
    {
      name: 'activate-empty-id-object',
      type: 'attest-activate',
      expect: 'WIRE_FORMAT',
      field: 'idObject',
      comment: 'idObject is empty',
      body: raw({ ...act, idObject: new Uint8Array(0) }),
    },
    {
      name: 'activate-with-nonce',
      type: 'attest-activate',
      expect: 'WIRE_FORMAT',
      field: 'nonce',
      comment: 'an activation with a challenge field mixed in',
      body: raw({ ...act, nonce: seq(32, 0x10) }),
    },
    {
      name: 'activated-long-secret',
      type: 'attest-activated',
      expect: 'WIRE_FORMAT',
      field: 'secret',
      comment: 'secret is 65 bytes (at most 64, a sha512 digest)',
      body: raw({ ...done, secret: seq(65, 0) }),
    },
    {
      name: 'activated-as-evidence',
      type: 'attest-activated',
      expect: 'WIRE_FORMAT',
      field: 't',
      comment: 'evidence where the activation answer is expected',
      body: encodeAttestEvidence(VECTOR_EVIDENCE),
    },
    ...forwardVectors(),
  ]
  const out = new Map<string, string>()
  for (const v of vectors) {
    const hexFrame = toHex(encodeFrame(v.body))
    const forward = v.type === 'attest-forward' || v.type === 'attest-forwarded'
    const lines = [
      `protocol: ${forward ? ATTEST_FORWARD_PROTOCOL : ATTEST_PROTOCOL}`,
      `type: ${v.type}`,
      `max-size: ${MAX_CONTROL_FRAME}`,
      `expect: ${v.expect}`,
      ...(v.field === undefined ? [] : [`field: ${v.field}`]),
      `comment: ${v.comment}`,
      ...(v.extra ?? []),
      '',
      ...(hexFrame.match(/.{1,64}/g) ?? ['']),
      '',
    ]
    out.set(`${v.name}.txt`, lines.join('\n'))
  }
  return out
}

function forwardVectors(): Vector[] {
  const sc = VECTOR_SIGNED_CHALLENGE
  const f = {
    v: 1,
    t: 'attest-forward',
    jobId: sc.jobId,
    blockHash: sc.blockHash,
    seq: 3,
    challengeSignature: sc.signature,
    phase: 'during',
    ...VECTOR_EVIDENCE,
  }
  return [
    {
      name: 'forward',
      type: 'attest-forward',
      expect: 'ok',
      comment:
        'member 0 forwards the during answer to its signed challenge; the quote nonce is keccak256(challengeSignature)',
      body: encodeAttestForward(VECTOR_FORWARD),
      extra: [
        `domain: DigicapPbft 1, chainId ${VECTOR_FORWARD_DOMAIN.chainId}, verifyingContract ${VECTOR_FORWARD_DOMAIN.verifyingContract}`,
        `challenge: AttestChallenge(jobId ${hex0x(sc.jobId)}, blockHash ${hex0x(sc.blockHash)}, seq ${sc.seq})`,
        `digest: ${hex0x(sc.digest)}`,
        `signer: ${addressFromPrivateKey(VECTOR_CHALLENGER_KEY)}`,
        `nonce: ${hex0x(sc.nonce)}`,
      ],
    },
    {
      name: 'forward-after',
      type: 'attest-forward',
      expect: 'ok',
      comment: 'an after answer: the evidence carries the clean-up report',
      body: encodeAttestForward({
        ...VECTOR_FORWARD,
        phase: 'after',
        evidence: {
          ...VECTOR_EVIDENCE,
          cleanup: { grantId: sc.jobId, workspaceRemoved: true, keyBuffersWiped: true },
        },
      }),
    },
    {
      name: 'forward-unknown-phase',
      type: 'attest-forward',
      expect: 'WIRE_FORMAT',
      field: 'phase',
      comment: 'phase is "run" (before, during or after)',
      body: raw({ ...f, phase: 'run' }),
    },
    {
      name: 'forward-short-signature',
      type: 'attest-forward',
      expect: 'WIRE_FORMAT',
      field: 'challengeSignature',
      comment: 'challengeSignature is 64 bytes (r ‖ s ‖ v is 65)',
      body: raw({ ...f, challengeSignature: sc.signature.subarray(0, 64) }),
    },
    {
      name: 'forward-negative-seq',
      type: 'attest-forward',
      expect: 'WIRE_FORMAT',
      field: 'seq',
      comment: 'seq is -1 (a uint64)',
      body: raw({ ...f, seq: -1 }),
    },
    {
      name: 'forward-with-record',
      type: 'attest-forward',
      expect: 'WIRE_FORMAT',
      field: 'record',
      comment: 'a forward carries no record (every member reads the registered one)',
      body: raw({ ...f, record: seq(300, 0x30) }),
    },
    {
      name: 'forward-with-nonce',
      type: 'attest-forward',
      expect: 'WIRE_FORMAT',
      field: 'nonce',
      comment: 'a nonce field: the nonce is never sent, the receiver hashes the signature',
      body: raw({ ...f, nonce: sc.nonce }),
    },
    {
      name: 'forward-short-pcrs',
      type: 'attest-forward',
      expect: 'WIRE_FORMAT',
      field: 'pcrValues',
      comment: 'pcrValues is 287 bytes (the evidence rules of attest-evidence apply)',
      body: raw({ ...f, pcrValues: seq(287, 0) }),
    },
    {
      name: 'forward-missing-block',
      type: 'attest-forward',
      expect: 'WIRE_FORMAT',
      field: 'blockHash',
      comment: 'no blockHash',
      body: raw(Object.fromEntries(Object.entries(f).filter(([k]) => k !== 'blockHash'))),
    },
    {
      name: 'forwarded',
      type: 'attest-forwarded',
      expect: 'ok',
      comment: 'the receiver kept it: its challenge holds (the quote is judged when needed)',
      body: encodeAttestForwarded({ status: 'kept' }),
    },
    {
      name: 'forwarded-stale',
      type: 'attest-forwarded',
      expect: 'ok',
      comment: 'refused: the signed block is older than the job’s watch',
      body: encodeAttestForwarded({ status: 'stale' }),
    },
    {
      name: 'forwarded-unknown-status',
      type: 'attest-forwarded',
      expect: 'WIRE_FORMAT',
      field: 'status',
      comment: 'status "maybe" is none of the statuses',
      body: raw({ v: 1, t: 'attest-forwarded', status: 'maybe' }),
    },
  ]
}

if (import.meta.main) {
  mkdirSync(ATTEST_VECTOR_DIR, { recursive: true })
  for (const f of readdirSync(ATTEST_VECTOR_DIR)) rmSync(join(ATTEST_VECTOR_DIR, f))
  const vectors = generateAttestVectors()
  for (const [name, content] of vectors) writeFileSync(join(ATTEST_VECTOR_DIR, name), content)
  console.log(`wrote ${vectors.size} vectors to ${ATTEST_VECTOR_DIR}`)
}
