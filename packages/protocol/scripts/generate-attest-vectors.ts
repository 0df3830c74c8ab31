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
import { encode } from 'cborg'
import {
  ATTEST_PROTOCOL,
  encodeAttestActivate,
  encodeAttestActivated,
  encodeAttestChallenge,
  encodeAttestEvidence,
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
  type: 'attest-challenge' | 'attest-evidence' | 'attest-activate' | 'attest-activated'
  expect: string
  field?: string
  comment: string
  body: Uint8Array
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
  ]
  const out = new Map<string, string>()
  for (const v of vectors) {
    const hexFrame = toHex(encodeFrame(v.body))
    const lines = [
      `protocol: ${ATTEST_PROTOCOL}`,
      `type: ${v.type}`,
      `max-size: ${MAX_CONTROL_FRAME}`,
      `expect: ${v.expect}`,
      ...(v.field === undefined ? [] : [`field: ${v.field}`]),
      `comment: ${v.comment}`,
      '',
      ...(hexFrame.match(/.{1,64}/g) ?? ['']),
      '',
    ]
    out.set(`${v.name}.txt`, lines.join('\n'))
  }
  return out
}

if (import.meta.main) {
  mkdirSync(ATTEST_VECTOR_DIR, { recursive: true })
  for (const f of readdirSync(ATTEST_VECTOR_DIR)) rmSync(join(ATTEST_VECTOR_DIR, f))
  const vectors = generateAttestVectors()
  for (const [name, content] of vectors) writeFileSync(join(ATTEST_VECTOR_DIR, name), content)
  console.log(`wrote ${vectors.size} vectors to ${ATTEST_VECTOR_DIR}`)
}
