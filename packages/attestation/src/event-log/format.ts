/**
 * The PCR 23 event log, version 1 (SPEC.md §6): what the executor extended into the run PCR,
 * in order. Binary, strict: `"DGEL" ‖ u8 version=1 ‖ u16 count ‖ count × (u8 kind ‖ 32-byte digest)`.
 */
import { concatBytes } from '../bytes.ts'
import { EventLogFormatError } from '../errors.ts'

/** Event kinds and their codes. `reset` records TPM2_PCR_Reset of PCR 23 (digest all zero). */
export const EVENT_KINDS = {
  reset: 0,
  runtime: 1,
  'capsule-header': 2,
  grant: 3,
  'ephemeral-key': 4,
} as const

export type EventKind = keyof typeof EVENT_KINDS

export interface RunEvent {
  readonly kind: EventKind
  /** The 32 bytes extended (runtime digest, capsule header hash, grant id, ephemeral key hash); zero for `reset`. */
  readonly digest: Uint8Array
}

export const EVENT_LOG_MAGIC = Uint8Array.of(0x44, 0x47, 0x45, 0x4c) // "DGEL"
export const EVENT_LOG_VERSION = 1
/** Most events a log may hold (a run extends 4; a few resets on top). */
export const MAX_EVENTS = 64

const KIND_OF_CODE = new Map<number, EventKind>(
  Object.entries(EVENT_KINDS).map(([k, v]) => [v, k as EventKind]),
)

function fail(field: string, shortMessage: string, details: Record<string, unknown> = {}): never {
  throw new EventLogFormatError(shortMessage, {
    details: { field, ...details },
    hint: 'The event log is not a Digicap PCR 23 log version 1; ask the executor for a fresh one.',
  })
}

/** @throws {EventLogFormatError} */
export function encodeEventLog(events: readonly RunEvent[]): Uint8Array {
  if (events.length > MAX_EVENTS) fail('count', 'Too many events', { count: events.length })
  const parts: Uint8Array[] = [
    EVENT_LOG_MAGIC,
    Uint8Array.of(EVENT_LOG_VERSION, events.length >> 8, events.length & 0xff),
  ]
  events.forEach((e, i) => {
    const code = EVENT_KINDS[e.kind]
    if (code === undefined) fail(`events[${i}].kind`, 'Unknown event kind')
    if (!(e.digest instanceof Uint8Array) || e.digest.length !== 32)
      fail(`events[${i}].digest`, 'An event digest is 32 bytes')
    if (e.kind === 'reset' && e.digest.some((b) => b !== 0))
      fail(`events[${i}].digest`, 'A reset event has a zero digest')
    parts.push(Uint8Array.of(code), e.digest)
  })
  return concatBytes(...parts)
}

/** @throws {EventLogFormatError} */
export function decodeEventLog(bytes: Uint8Array): RunEvent[] {
  if (bytes.length < 7) fail('header', 'Truncated event log header', { length: bytes.length })
  if (!EVENT_LOG_MAGIC.every((b, i) => bytes[i] === b)) fail('magic', 'Not a Digicap event log')
  if (bytes[4] !== EVENT_LOG_VERSION)
    fail('version', 'Unsupported event log version', { version: bytes[4] })
  const count = ((bytes[5] ?? 0) << 8) | (bytes[6] ?? 0)
  if (count > MAX_EVENTS) fail('count', 'Too many events', { count })
  if (bytes.length !== 7 + count * 33) {
    fail(
      bytes.length < 7 + count * 33 ? 'events' : '(end)',
      'Event log length does not match its count',
      {
        count,
        length: bytes.length,
      },
    )
  }
  const events: RunEvent[] = []
  for (let i = 0; i < count; i++) {
    const at = 7 + i * 33
    const kind = KIND_OF_CODE.get(bytes[at] ?? -1)
    if (kind === undefined) fail(`events[${i}].kind`, 'Unknown event kind', { kind: bytes[at] })
    const digest = bytes.slice(at + 1, at + 33)
    if (kind === 'reset' && digest.some((b) => b !== 0))
      fail(`events[${i}].digest`, 'A reset event has a zero digest')
    events.push({ kind, digest })
  }
  return events
}
