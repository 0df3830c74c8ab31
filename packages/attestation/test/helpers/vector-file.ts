/**
 * The quote vector file format (SPEC.md §4): `key: value` lines, bytes in lowercase hex.
 * Kept apart from the generator so the vector test needs no TPM.
 */
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { QuoteClock } from '../../src/index.ts'

export const VECTOR_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'vectors')

export interface QuoteVector {
  name: string
  expect: string
  comment: string
  ekPublic: Uint8Array
  akPublic: Uint8Array
  attest: Uint8Array
  signature: Uint8Array
  qualifyingData: Uint8Array
  pcrs: number[]
  pcrValues: Map<number, Uint8Array>
  previous?: QuoteClock
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

export function formatVector(v: QuoteVector): string {
  const lines = [
    `name: ${v.name}`,
    `expect: ${v.expect}`,
    `comment: ${v.comment}`,
    `pcrs: ${v.pcrs.join(',')}`,
  ]
  if (v.previous !== undefined) {
    lines.push(
      `previous-clock: ${v.previous.clock}`,
      `previous-reset-count: ${v.previous.resetCount}`,
      `previous-restart-count: ${v.previous.restartCount}`,
    )
  }
  lines.push(
    `ek-public: ${hex(v.ekPublic)}`,
    `ak-public: ${hex(v.akPublic)}`,
    `qualifying-data: ${hex(v.qualifyingData)}`,
    `attest: ${hex(v.attest)}`,
    `signature: ${hex(v.signature)}`,
  )
  for (const [pcr, value] of [...v.pcrValues].sort((a, b) => a[0] - b[0]))
    lines.push(`pcr-${pcr}: ${hex(value)}`)
  return `${lines.join('\n')}\n`
}

export function parseVector(text: string): QuoteVector {
  const fields = new Map<string, string>()
  for (const line of text.split('\n')) {
    if (line === '') continue
    const at = line.indexOf(': ')
    fields.set(line.slice(0, at), line.slice(at + 2))
  }
  const get = (k: string) => {
    const v = fields.get(k)
    if (v === undefined) throw new Error(`vector field ${k} missing`)
    return v
  }
  const bytes = (k: string) => new Uint8Array(Buffer.from(get(k), 'hex'))
  const pcrValues = new Map<number, Uint8Array>()
  for (const [k] of fields) if (k.startsWith('pcr-')) pcrValues.set(Number(k.slice(4)), bytes(k))
  const vector: QuoteVector = {
    name: get('name'),
    expect: get('expect'),
    comment: get('comment'),
    ekPublic: bytes('ek-public'),
    akPublic: bytes('ak-public'),
    attest: bytes('attest'),
    signature: bytes('signature'),
    qualifyingData: bytes('qualifying-data'),
    pcrs: get('pcrs').split(',').map(Number),
    pcrValues,
  }
  if (fields.has('previous-clock')) {
    vector.previous = {
      clock: BigInt(get('previous-clock')),
      resetCount: Number(get('previous-reset-count')),
      restartCount: Number(get('previous-restart-count')),
    }
  }
  return vector
}
