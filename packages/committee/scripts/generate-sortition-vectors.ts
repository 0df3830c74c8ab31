/**
 * Generates `test/sortition-vectors/*.txt`, the vectors of SPEC-SORTITION.md §7: the score of
 * an output at a weight (edges and every magnitude), a verifier's ticket end to end (seed, VRF
 * proof, output, score), and a committee drawn from several tickets. Deterministic: keys, job ids
 * and block hashes are keccak256 of fixed names, outputs of the score cases keccak256 of
 * "beta-i" with i leading zero bytes.
 *
 * Run `node scripts/generate-sortition-vectors.ts` (`pnpm vectors:sortition`) to rewrite them;
 * `test/sortition-vectors.test.ts` fails when the files drift from this script.
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { checksumAddress, toHex } from '@digicap/capsule-core'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { keccak_256 } from '@noble/hashes/sha3.js'
import {
  drawTicket,
  jobSeed,
  MIN_SORTITION_WEIGHT,
  negLog2Uniform,
  rankTickets,
  selectionWeight,
  sortitionScore,
} from '../src/index.ts'

export const SORTITION_VECTOR_DIR = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  'test',
  'sortition-vectors',
)

const text = (s: string) => keccak_256(new TextEncoder().encode(s))
const fromHex = (hex: string) => Uint8Array.from(Buffer.from(hex.padStart(64, '0'), 'hex'))
const ETHER = 10n ** 18n
/** NodeRegistry's largest stake (uint128) at the largest reputation. */
const MAX_WEIGHT = ((1n << 128n) - 1n) * 1000n

/** The address of a secp256k1 secret key (what NodeRegistry knows a verifier by). */
export function addressOf(secretKey: Uint8Array): string {
  const point = secp256k1.getPublicKey(secretKey, false)
  return checksumAddress(keccak_256(point.subarray(1)).subarray(12))
}

/** A vector file's `key: value` lines; a key that repeats (`ticket`) gives every value in order. */
export function parseSortitionVector(content: string): Map<string, string[]> {
  const fields = new Map<string, string[]>()
  for (const line of content.split('\n').filter(Boolean)) {
    const i = line.indexOf(': ')
    const key = line.slice(0, i)
    fields.set(key, [...(fields.get(key) ?? []), line.slice(i + 2)])
  }
  return fields
}

function lines(fields: [string, string][]): string {
  return `${fields.map(([k, v]) => `${k}: ${v}`).join('\n')}\n`
}

function scoreCase(comment: string, beta: Uint8Array, weight: bigint): string {
  return lines([
    ['case', 'score'],
    ['comment', comment],
    ['beta', toHex(beta)],
    ['weight', weight.toString()],
    ['neg-log2', negLog2Uniform(beta).toString()],
    ['score', sortitionScore(beta, weight).toString()],
  ])
}

interface Verifier {
  name: string
  secretKey: Uint8Array
  stake: bigint
  reputation: bigint
}

const verifier = (i: number, stake: bigint, reputation: bigint): Verifier => ({
  name: `verifier-${i}`,
  secretKey: text(`verifier-${i}`),
  stake,
  reputation,
})

function ticketFields(v: Verifier, seed: Uint8Array): [string, string][] {
  const t = drawTicket(v.secretKey, seed)
  const weight = selectionWeight(v.stake, v.reputation)
  return [
    ['address', addressOf(v.secretKey)],
    ['public-key', toHex(t.publicKey)],
    ['proof', toHex(t.proof)],
    ['beta', toHex(t.beta)],
    ['stake', v.stake.toString()],
    ['reputation', v.reputation.toString()],
    ['score', sortitionScore(t.beta, weight).toString()],
  ]
}

/** Every vector file, by name. */
export function generateSortitionVectors(): Map<string, string> {
  const out = new Map<string, string>()
  // Scores at the edges of the output range.
  const edges: [string, string, string][] = [
    [
      'score-beta-zero',
      '0',
      'beta = 0, the largest −log₂(u) (256), at the smallest eligible weight: 2⁹⁵',
    ],
    ['score-beta-max', 'f'.repeat(64), 'beta = 2²⁵⁶ − 1: u = 1, −log₂(u) = 0, score 0'],
    [
      'score-beta-max-minus-one',
      `${'f'.repeat(63)}e`,
      'beta = 2²⁵⁶ − 2: the smallest non-zero −log₂(u)',
    ],
    ['score-beta-half', `7${'f'.repeat(63)}`, 'beta = 2²⁵⁵ − 1: u = 1/2, −log₂(u) = 1 exactly'],
    ['score-beta-half-plus-one', `8${'0'.repeat(63)}`, 'beta = 2²⁵⁵: just under 1'],
    ['score-beta-one', '1', 'beta = 1: m = 2, −log₂(u) = 255 exactly'],
  ]
  for (const [name, hex, comment] of edges)
    out.set(`${name}.txt`, scoreCase(comment, fromHex(hex), MIN_SORTITION_WEIGHT))
  // Outputs of every magnitude (i leading zero bytes) at weights from the floor to the largest.
  const weights: [string, bigint][] = [
    ['floor', MIN_SORTITION_WEIGHT],
    ['0.01-ether-rep-1', ETHER / 100n],
    ['1-ether-rep-50', ETHER * 50n],
    ['32-ether-rep-1000', 32n * ETHER * 1000n],
    ['largest', MAX_WEIGHT],
  ]
  for (let i = 0; i < 10; i++) {
    const beta = text(`beta-${i}`)
    beta.fill(0, 0, i * 3)
    const [label, weight] = weights[i % weights.length] as [string, bigint]
    out.set(
      `score-${String(i).padStart(2, '0')}-${label}.txt`,
      scoreCase(
        `keccak256("beta-${i}") with its first ${i * 3} bytes zeroed, weight ${label}`,
        beta,
        weight,
      ),
    )
  }
  // One verifier's ticket, end to end.
  const jobId = text('job-1')
  const blockHash = text('block-1')
  const seed = jobSeed(jobId, blockHash)
  out.set(
    'ticket.txt',
    lines([
      ['case', 'ticket'],
      [
        'comment',
        'verifier keccak256("verifier-0") for job keccak256("job-1") granted in the block of hash keccak256("block-1")',
      ],
      ['secret-key', toHex(text('verifier-0'))],
      ['job-id', toHex(jobId)],
      ['grant-block-hash', toHex(blockHash)],
      ['seed', toHex(seed)],
      ...ticketFields(verifier(0, ETHER, 700n), seed),
    ]),
  )
  // A committee of 4 from 7 tickets, in the order they were submitted.
  const job2 = text('job-2')
  const hash2 = text('block-2')
  const seed2 = jobSeed(job2, hash2)
  const seven = [
    verifier(1, ETHER / 100n, 1n),
    verifier(2, 5n * ETHER, 1000n),
    verifier(3, ETHER, 50n),
    verifier(4, 32n * ETHER, 400n),
    verifier(5, ETHER / 10n, 900n),
    verifier(6, 2n * ETHER, 5n),
    verifier(7, 10n * ETHER, 1000n),
  ]
  const tickets = seven.map((v) => {
    const t = drawTicket(v.secretKey, seed2)
    return {
      id: addressOf(v.secretKey),
      beta: t.beta,
      weight: selectionWeight(v.stake, v.reputation),
    }
  })
  const seats = rankTickets(tickets).slice(0, 4)
  const committee: [string, string][] = [
    ['case', 'committee'],
    [
      'comment',
      'seven verifiers keccak256("verifier-1" … "verifier-7") for job keccak256("job-2"), block hash keccak256("block-2"); 4 seats; tickets listed in submission order',
    ],
    ['job-id', toHex(job2)],
    ['grant-block-hash', toHex(hash2)],
    ['seed', toHex(seed2)],
    ['seats', '4'],
  ]
  for (const v of seven) {
    const t = drawTicket(v.secretKey, seed2)
    const weight = selectionWeight(v.stake, v.reputation)
    committee.push([
      'ticket',
      `${addressOf(v.secretKey)} ${toHex(t.beta)} ${v.stake} ${v.reputation} ${sortitionScore(t.beta, weight)}`,
    ])
  }
  committee.push(['committee', seats.map((s) => s.id).join(' ')])
  out.set('committee-4-of-7.txt', lines(committee))
  return out
}

if (import.meta.url === `file://${process.argv[1]}`) {
  mkdirSync(SORTITION_VECTOR_DIR, { recursive: true })
  for (const f of readdirSync(SORTITION_VECTOR_DIR)) rmSync(join(SORTITION_VECTOR_DIR, f))
  const vectors = generateSortitionVectors()
  for (const [name, content] of vectors) writeFileSync(join(SORTITION_VECTOR_DIR, name), content)
  console.log(`wrote ${vectors.size} vectors to ${SORTITION_VECTOR_DIR}`)
}
