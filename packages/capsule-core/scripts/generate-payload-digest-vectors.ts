/**
 * Generates test/payload-digest-vectors.txt: the version-2 payload digest (docs/bundle.md §7,
 * ADR 0059) of a few payloads at a few chunk sizes. Blocks of `key: value` lines separated by
 * a blank line; `data` is hex. `test/payload-digest.test.ts` re-runs this generator (drift) and
 * checks every value against a straightforward implementation of the definition.
 *
 *   node scripts/generate-payload-digest-vectors.ts
 */
import { writeFileSync } from 'node:fs'
import { payloadDigest } from '../src/index.ts'

export interface PayloadDigestVector {
  readonly name: string
  readonly chunkSize: number
  readonly data: Uint8Array
  readonly payloadDigest: Uint8Array
}

/** Byte i of a vector's data: a fixed pattern, so the file alone gives every input. */
const patterned = (size: number) => Uint8Array.from({ length: size }, (_, i) => (i * 31 + 7) & 0xff)

const CASES: readonly { name: string; chunkSize: number; size: number }[] = [
  { name: 'empty', chunkSize: 64, size: 0 },
  { name: 'one-short-chunk', chunkSize: 64, size: 10 },
  { name: 'one-full-chunk', chunkSize: 64, size: 64 },
  { name: 'exact-multiple', chunkSize: 64, size: 192 },
  { name: 'multi-chunk-with-tail', chunkSize: 64, size: 200 },
  { name: 'default-chunk-size-short', chunkSize: 1024 * 1024, size: 100 },
]

export function generatePayloadDigestVectors(): PayloadDigestVector[] {
  return CASES.map((c) => {
    const data = patterned(c.size)
    return { ...c, data, payloadDigest: payloadDigest(data, c.chunkSize) }
  })
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

export function renderPayloadDigestVectors(vectors: readonly PayloadDigestVector[]): string {
  const head =
    '# digicap payload digest v2: SHA-256("digicap/v2 payload digest chunked sha256" || u32be(chunk-size) || u64be(len(data)) || SHA-256(chunk 0) || ... || SHA-256(chunk n-1))\n\n'
  return (
    head +
    vectors
      .map(
        (v) =>
          `name: ${v.name}\nchunk-size: ${v.chunkSize}\nsize: ${v.data.length}\ndata: ${hex(v.data)}\npayload-digest: ${hex(v.payloadDigest)}\n`,
      )
      .join('\n')
  )
}

/** The vectors of a rendered file (`#` lines are comments). */
export function parsePayloadDigestVectors(text: string): PayloadDigestVector[] {
  return text
    .split('\n\n')
    .map((block) => block.split('\n').filter((l) => l && !l.startsWith('#')))
    .filter((lines) => lines.length > 0)
    .map((lines) => {
      const f = Object.fromEntries(
        lines.map((l) => [l.slice(0, l.indexOf(': ')), l.slice(l.indexOf(': ') + 2)]),
      )
      return {
        name: f.name as string,
        chunkSize: Number(f['chunk-size']),
        data: new Uint8Array(Buffer.from(f.data as string, 'hex')),
        payloadDigest: new Uint8Array(Buffer.from(f['payload-digest'] as string, 'hex')),
      }
    })
}

export const PAYLOAD_DIGEST_VECTORS_PATH = new URL(
  '../test/payload-digest-vectors.txt',
  import.meta.url,
).pathname

if (import.meta.main) {
  writeFileSync(
    PAYLOAD_DIGEST_VECTORS_PATH,
    renderPayloadDigestVectors(generatePayloadDigestVectors()),
  )
  console.log(`wrote ${PAYLOAD_DIGEST_VECTORS_PATH}`)
}
