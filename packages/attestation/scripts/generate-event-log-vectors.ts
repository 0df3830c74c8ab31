/**
 * Generates `test/event-log-vectors/*.txt`, the vectors of the PCR 23 event log (SPEC.md §6):
 * `name`, `expect` (`ok` or `EVENT_LOG_FORMAT`), `field` (failures), `pcr23` (ok: the replayed
 * value), `comment`, then `log: <hex>`. Deterministic (fixed digests), so `test/event-log.test.ts`
 * fails when the files drift from this script.
 *
 *   node scripts/generate-event-log-vectors.ts
 */
import { createHash } from 'node:crypto'
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { encodeEventLog, type RunEvent, replayEventLog } from '../src/index.ts'

export const EVENT_LOG_VECTOR_DIR = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  'test',
  'event-log-vectors',
)

const filled = (b: number) => new Uint8Array(32).fill(b)
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const reset: RunEvent = { kind: 'reset', digest: new Uint8Array(32) }
const run: RunEvent[] = [
  { kind: 'runtime', digest: filled(0x11) },
  { kind: 'capsule-header', digest: filled(0x22) },
  { kind: 'grant', digest: filled(0x33) },
  {
    kind: 'ephemeral-key',
    digest: new Uint8Array(createHash('sha256').update(filled(0x44)).digest()),
  },
]

interface Vector {
  name: string
  comment: string
  log: Uint8Array
  field?: string
}

function edit(log: Uint8Array, at: number, value: number): Uint8Array {
  const out = log.slice()
  out[at] = value
  return out
}

export function generateEventLogVectors(): Map<string, string> {
  const full = encodeEventLog([reset, ...run, reset])
  const ok: Vector[] = [
    { name: 'empty', comment: 'no events: PCR 23 at its reset value', log: encodeEventLog([]) },
    { name: 'before', comment: 'the agent reset PCR 23 at start', log: encodeEventLog([reset]) },
    {
      name: 'during',
      comment: 'reset, then the four run extends in SPEC order',
      log: encodeEventLog([reset, ...run]),
    },
    { name: 'after', comment: 'a run and its clean-up reset', log: full },
    {
      name: 'swapped',
      comment:
        'grant before capsule header: well-formed, replays to another value (a phase verifier refuses it)',
      log: encodeEventLog([reset, run[0]!, run[2]!, run[1]!, run[3]!]),
    },
    {
      name: 'max-events',
      comment: '64 events, the most a log may hold',
      log: encodeEventLog(
        Array.from({ length: 64 }, (_, i) => (i % 5 === 0 ? reset : run[i % 4]!)),
      ),
    },
  ]
  const bad: Vector[] = [
    { name: 'short-header', comment: '6 bytes', log: full.subarray(0, 6), field: 'header' },
    { name: 'bad-magic', comment: '"DGEX"', log: edit(full, 3, 0x58), field: 'magic' },
    { name: 'version-2', comment: 'version 2', log: edit(full, 4, 2), field: 'version' },
    {
      name: 'count-65',
      comment: 'count 65 (over the limit) with 65 events',
      log: Uint8Array.from([...full.subarray(0, 5), 0, 65, ...new Uint8Array(65 * 33)]),
      field: 'count',
    },
    {
      name: 'truncated',
      comment: 'the last event cut by one byte',
      log: full.subarray(0, full.length - 1),
      field: 'events',
    },
    {
      name: 'trailing-byte',
      comment: 'one byte after the last event',
      log: Uint8Array.from([...full, 0]),
      field: '(end)',
    },
    {
      name: 'unknown-kind',
      comment: 'event 1 has code 5',
      log: edit(full, 7 + 33, 5),
      field: 'events[1].kind',
    },
    {
      name: 'reset-with-digest',
      comment: 'a reset event whose digest is not zero',
      log: edit(full, 7 + 1, 1),
      field: 'events[0].digest',
    },
  ]
  const out = new Map<string, string>()
  for (const v of ok) {
    const lines = [
      `name: ${v.name}`,
      'expect: ok',
      `pcr23: ${hex(
        replayEventLog(
          // replay of what encodeEventLog wrote
          decodeForGenerator(v.log),
        ),
      )}`,
      `comment: ${v.comment}`,
      `log: ${hex(v.log)}`,
      '',
    ]
    out.set(`${v.name}.txt`, lines.join('\n'))
  }
  for (const v of bad) {
    const lines = [
      `name: ${v.name}`,
      'expect: EVENT_LOG_FORMAT',
      `field: ${v.field}`,
      `comment: ${v.comment}`,
      `log: ${hex(v.log)}`,
      '',
    ]
    out.set(`${v.name}.txt`, lines.join('\n'))
  }
  return out
}

/** The events of a log this generator wrote (no validation: the test checks the decoder). */
function decodeForGenerator(log: Uint8Array): RunEvent[] {
  const kinds = ['reset', 'runtime', 'capsule-header', 'grant', 'ephemeral-key'] as const
  const count = ((log[5] ?? 0) << 8) | (log[6] ?? 0)
  return Array.from({ length: count }, (_, i) => ({
    kind: kinds[log[7 + i * 33] ?? 0]!,
    digest: log.slice(8 + i * 33, 40 + i * 33),
  }))
}

export function parseEventLogVector(text: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const line of text.split('\n')) {
    const i = line.indexOf(': ')
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 2)
  }
  return out
}

if (import.meta.main) {
  mkdirSync(EVENT_LOG_VECTOR_DIR, { recursive: true })
  for (const f of readdirSync(EVENT_LOG_VECTOR_DIR)) rmSync(join(EVENT_LOG_VECTOR_DIR, f))
  const vectors = generateEventLogVectors()
  for (const [name, content] of vectors) writeFileSync(join(EVENT_LOG_VECTOR_DIR, name), content)
  console.log(`wrote ${vectors.size} vectors to ${EVENT_LOG_VECTOR_DIR}`)
}
