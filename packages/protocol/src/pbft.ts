/**
 * `/digicap/pbft/1.0.0` (SPEC-PBFT.md): signed PBFT votes, one per frame, sent one way (no
 * reply) on a stream a node keeps per peer, each with the votes that justify it. The signatures are EIP-712 over the vote's fields
 * (`@digicap/committee` checks them); this file only fixes the bytes.
 */
import {
  checkFields,
  decodeEnvelope,
  MAX_U64,
  readBytes,
  readText,
  readUint,
  u64,
  WIRE_VERSION,
  type WireMap,
} from './cbor.ts'
import { WireFormatError } from './errors.ts'
import { MAX_CONTROL_FRAME } from './frame.ts'
import { encodeChecked, ID_LENGTH, SIGNATURE_LENGTH } from './messages.ts'

/** Committee member → committee member, one signed vote per frame (many per stream), no reply. */
export const PBFT_PROTOCOL = '/digicap/pbft/1.0.0'
/** Default largest `pbft` frame body (64 KiB; a proof of 64 votes is about 13 KiB). */
export const PBFT_MAX_FRAME = MAX_CONTROL_FRAME
/** Most members a committee may have. */
export const PBFT_MAX_MEMBERS = 64
/** Most votes a `proof` may carry: a new view's 2f + 1 view changes and every member's observation. */
export const PBFT_MAX_PROOF = 128
/** Largest verdict: one pass bit per run phase (before, during, after). */
export const PBFT_MAX_VERDICT = 7

/**
 * The five kinds of vote, in protocol order. `observation`: what a member saw of the run, sent
 * before agreeing (ADR 0087); its view is 0.
 */
export type PbftPhase = 'pre-prepare' | 'prepare' | 'commit' | 'view-change' | 'observation'
export const PBFT_PHASES: readonly PbftPhase[] = Object.freeze([
  'pre-prepare',
  'prepare',
  'commit',
  'view-change',
  'observation',
])

/** One signed vote (SPEC-PBFT.md §3). */
export interface PbftVote {
  phase: PbftPhase
  /** The job the committee decides (32 bytes). */
  jobId: Uint8Array
  /** The view the vote is cast in (for `view-change`: the view asked for). */
  view: bigint
  /**
   * `view-change` only: 1 + the view in which the sender prepared `verdict`/`evidenceHash`,
   * or 0 when it prepared nothing (then both are zero). 0 for every other phase.
   */
  preparedView: bigint
  /** Bit i set = run phase i passed (0 before, 1 during, 2 after). */
  verdict: number
  /** keccak-256 of the evidence the verdict is about (32 bytes). */
  evidenceHash: Uint8Array
  /** EIP-712 signature `r || s || v` of the member (65 bytes). */
  signature: Uint8Array
}

/** A `pbft` message: a vote and the votes that justify it (SPEC-PBFT.md §4). */
export interface PbftMessage {
  vote: PbftVote
  /**
   * `view-change`: the 2f+1 prepares of the prepared value; `pre-prepare`: the observations that
   * justify its verdict, after (in view > 0) the 2f+1 view changes.
   */
  proof: PbftVote[]
}

const TYPE = 'pbft'
const VOTE_FIELDS = ['phase', 'jobId', 'view', 'verdict', 'evidenceHash', 'signature']

function voteMap(vote: PbftVote): WireMap {
  const map: WireMap = {
    phase: vote.phase,
    jobId: vote.jobId,
    view: u64(vote.view),
    verdict: vote.verdict,
    evidenceHash: vote.evidenceHash,
    signature: vote.signature,
  }
  if (vote.phase === 'view-change') map.preparedView = u64(vote.preparedView)
  return map
}

function readVote(value: unknown, field: string): PbftVote {
  if (
    typeof value !== 'object' ||
    value === null ||
    Array.isArray(value) ||
    value instanceof Uint8Array
  ) {
    throw new WireFormatError(`Field ${field} of ${TYPE} is not a map`, {
      details: { type: TYPE, field, reason: 'type' },
    })
  }
  const map = value as WireMap
  const phase = readText<PbftPhase>(map, TYPE, 'phase', { oneOf: PBFT_PHASES })
  const isViewChange = phase === 'view-change'
  const fields = [...VOTE_FIELDS, ...(isViewChange ? ['preparedView'] : [])]
  for (const name of fields) {
    if (!Object.hasOwn(map, name)) {
      throw new WireFormatError(`Missing field in ${TYPE} ${field}`, {
        details: { type: TYPE, field: name, reason: 'missing' },
      })
    }
  }
  for (const name of Object.keys(map)) {
    if (!fields.includes(name)) {
      throw new WireFormatError(`Unknown field in ${TYPE} ${field}`, {
        details: { type: TYPE, field: name, reason: 'unknown' },
      })
    }
  }
  const verdict = Number(readUint(map, TYPE, 'verdict', BigInt(PBFT_MAX_VERDICT)))
  const view = readUint(map, TYPE, 'view', MAX_U64)
  const preparedView = isViewChange ? readUint(map, TYPE, 'preparedView', MAX_U64) : 0n
  if (isViewChange && preparedView > view) {
    throw new WireFormatError('A view change cannot carry a value prepared in a later view', {
      details: { type: TYPE, field: 'preparedView', reason: 'range' },
    })
  }
  return {
    phase,
    jobId: readBytes(map, TYPE, 'jobId', ID_LENGTH),
    view,
    preparedView,
    verdict,
    evidenceHash: readBytes(map, TYPE, 'evidenceHash', ID_LENGTH),
    signature: readBytes(map, TYPE, 'signature', SIGNATURE_LENGTH),
  }
}

/**
 * @throws {WireFormatError} for anything but one canonical `pbft` map (SPEC-PBFT.md §4).
 * @throws {WireVersionError} for `v` other than 1.
 */
export function decodePbftMessage(body: Uint8Array): PbftMessage {
  const { type, map } = decodeEnvelope(body)
  if (type !== TYPE) {
    throw new WireFormatError(`Expected a ${TYPE} message`, {
      details: { field: 't', reason: 'unexpected-type', expected: TYPE, got: type.slice(0, 32) },
    })
  }
  checkFields(map, type, ['vote', 'proof'])
  const proof = map.proof
  if (!Array.isArray(proof)) {
    throw new WireFormatError(`Field proof of ${TYPE} is not an array`, {
      details: { type, field: 'proof', reason: 'type' },
    })
  }
  if (proof.length > PBFT_MAX_PROOF) {
    throw new WireFormatError(`Field proof of ${TYPE} has too many votes`, {
      details: {
        type,
        field: 'proof',
        reason: 'length',
        length: proof.length,
        max: PBFT_MAX_PROOF,
      },
    })
  }
  return {
    vote: readVote(map.vote, 'vote'),
    proof: proof.map((v) => readVote(v, 'proof')),
  }
}

/** @throws {InvalidArgumentError} if a field has the wrong type, length or range. */
export function encodePbftMessage(message: PbftMessage): Uint8Array {
  return encodeChecked(
    TYPE,
    () => ({
      v: WIRE_VERSION,
      t: TYPE,
      vote: voteMap(message.vote),
      proof: message.proof.map(voteMap),
    }),
    decodePbftMessage,
  )
}
