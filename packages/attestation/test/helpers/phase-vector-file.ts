/**
 * Phase vector files (SPEC.md §7): a quote vector (§4) plus `phase`, `event-log` (DGEL hex),
 * `boot-pcrs` (PCRs 0–7, 256 bytes hex), for `during` the run (`run-runtime-digest`,
 * `run-capsule-header-hash`, `run-grant-id`, `run-ephemeral-public-key`), for `after`
 * `cleanup` (`none`, or `<grant id hex>,<workspaceRemoved 0|1>,<keyBuffersWiped 0|1>`), the
 * run's `grant-id` the report must name, and the before-quote's clock as `previous-*`.
 */
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  type CleanupReport,
  decodeEventLog,
  encodeEventLog,
  type Phase,
  type RunEvent,
  type RunMeasurementParameters,
} from '../../src/index.ts'
import { formatVector, parseVector, type QuoteVector } from './vector-file.ts'

export const PHASE_VECTOR_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'phase-vectors')

export interface PhaseVector extends QuoteVector {
  phase: Phase
  eventLog: RunEvent[]
  bootPcrs: Map<number, Uint8Array>
  run?: RunMeasurementParameters
  /** `null`: the evidence had no report (checked, and refused). Absent: not an after vector. */
  cleanup?: CleanupReport | null
  /** For `after`: the grant whose clean-up the verifier expects. */
  grantId?: Uint8Array
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const unhex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'))

export function formatPhaseVector(v: PhaseVector): string {
  const lines = [
    `phase: ${v.phase}`,
    `event-log: ${hex(encodeEventLog(v.eventLog))}`,
    `boot-pcrs: ${[0, 1, 2, 3, 4, 5, 6, 7].map((i) => hex(v.bootPcrs.get(i) ?? new Uint8Array())).join('')}`,
  ]
  if (v.run !== undefined) {
    lines.push(
      `run-runtime-digest: ${hex(v.run.runtimeDigest)}`,
      `run-capsule-header-hash: ${hex(v.run.capsuleHeaderHash)}`,
      `run-grant-id: ${hex(v.run.grantId)}`,
      `run-ephemeral-public-key: ${hex(v.run.ephemeralPublicKey)}`,
    )
  }
  if (v.grantId !== undefined) lines.push(`grant-id: ${hex(v.grantId)}`)
  if (v.cleanup !== undefined) {
    lines.push(
      `cleanup: ${
        v.cleanup === null
          ? 'none'
          : `${hex(v.cleanup.grantId)},${Number(v.cleanup.workspaceRemoved)},${Number(v.cleanup.keyBuffersWiped)}`
      }`,
    )
  }
  return `${formatVector(v)}${lines.join('\n')}\n`
}

export function parsePhaseVector(text: string): PhaseVector {
  const base = parseVector(text)
  const fields = new Map<string, string>()
  for (const line of text.split('\n')) {
    const at = line.indexOf(': ')
    if (at > 0) fields.set(line.slice(0, at), line.slice(at + 2))
  }
  const boot = unhex(fields.get('boot-pcrs') ?? '')
  const v: PhaseVector = {
    ...base,
    phase: fields.get('phase') as Phase,
    eventLog: decodeEventLog(unhex(fields.get('event-log') ?? '')),
    bootPcrs: new Map([0, 1, 2, 3, 4, 5, 6, 7].map((i) => [i, boot.slice(i * 32, i * 32 + 32)])),
  }
  if (fields.has('run-grant-id')) {
    v.run = {
      runtimeDigest: unhex(fields.get('run-runtime-digest') ?? ''),
      capsuleHeaderHash: unhex(fields.get('run-capsule-header-hash') ?? ''),
      grantId: unhex(fields.get('run-grant-id') ?? ''),
      ephemeralPublicKey: unhex(fields.get('run-ephemeral-public-key') ?? ''),
    }
  }
  const grant = fields.get('grant-id')
  if (grant !== undefined) v.grantId = unhex(grant)
  const cleanup = fields.get('cleanup')
  if (cleanup !== undefined) {
    const [grant = '', removed, wiped] = cleanup.split(',')
    v.cleanup =
      cleanup === 'none'
        ? null
        : {
            grantId: unhex(grant),
            workspaceRemoved: removed === '1',
            keyBuffersWiped: wiped === '1',
          }
  }
  return v
}
