/**
 * What slashing protection (ADR 0093) costs a vote: every PBFT vote a verifier signs goes through
 * its signed-vote record (`fileSignedVotes`, src/node/verifier/signed-votes-file.ts), durable on
 * the real disk before the vote leaves. Measured in the same run against the floor of any durable
 * record: one `write` + `fdatasync` of ~200 bytes to a file in the same folder.
 *
 *   node bench/signed-votes.ts             # 200 timed votes on an empty record and on a full one
 *   BENCH_VOTES=500 BENCH_OPEN=2000 node bench/signed-votes.ts
 *   BENCH_DIR=/var/lib/x node bench/signed-votes.ts   # the folder (default: the OS temp folder)
 *
 * A vote is one `sign()`: the digest made durable, the key asked (here 65 random bytes, so only
 * the record is timed), the signature made durable. Printed per record size: median and p90 of a
 * vote, and the median's ratio to the raw fdatasync.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, open, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { privateKeySigner } from '@digicap/capsule-core'
import { writeFileAtomic } from '@digicap/cli-kit'
import type { PbftVoteSlot } from '@digicap/committee'
import { fileSignedVotes } from '../src/node/verifier/signed-votes-file.ts'

const VOTES = Number(process.env.BENCH_VOTES ?? 200)
const OPEN = Number(process.env.BENCH_OPEN ?? 2000)
const dir = await mkdtemp(join(process.env.BENCH_DIR ?? tmpdir(), 'signed-votes-bench-'))
const signer = privateKeySigner(`0x${randomBytes(32).toString('hex')}`).address
const domain = {
  chainId: 31337n,
  verifyingContract: `0x${'ab'.repeat(20)}` as `0x${string}`,
}
const PHASES = ['pre-prepare', 'prepare', 'commit', 'observation'] as const

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number
const p90 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.9)] as number
const ms = (x: number) => `${x.toFixed(3)} ms`

/** The floor: one write + fdatasync of a ~200-byte line, appended, `n` times. */
async function rawFdatasync(n: number): Promise<number[]> {
  const fh = await open(join(dir, 'raw.log'), 'a')
  const line = `${'x'.repeat(199)}\n`
  const out: number[] = []
  try {
    for (let i = 0; i < n; i++) {
      const t = performance.now()
      await fh.write(line)
      await fh.datasync()
      out.push(performance.now() - t)
    }
  } finally {
    await fh.close()
  }
  return out
}

let job = 0
/** Signs `n` votes, a job's four phases after another, and returns each one's time. */
async function votes(book: Awaited<ReturnType<ReturnType<typeof fileSignedVotes>>>, n: number) {
  const out: number[] = []
  for (let i = 0; i < n; i++) {
    if (i % PHASES.length === 0) job++
    const slot: PbftVoteSlot = {
      domain,
      jobId: new Uint8Array(32).fill(job % 256).map((b, k) => (k < 4 ? (job >> (8 * k)) & 255 : b)),
      phase: PHASES[i % PHASES.length] as PbftVoteSlot['phase'],
      view: 0n,
    }
    const t = performance.now()
    await book.sign(signer, slot, randomBytes(32), async () => randomBytes(65))
    out.push(performance.now() - t)
  }
  return out
}

try {
  const book = await fileSignedVotes({
    path: join(dir, 'signed-votes.json'),
    signer,
    create: true,
    maxEntries: OPEN + VOTES * 2,
  })({ writeFileAtomic })
  const rows: [string, number[]][] = []
  rows.push(['raw write+fdatasync (200 B)', await rawFdatasync(VOTES)])
  rows.push(['vote, empty record', await votes(book, VOTES)])
  await votes(book, Math.max(0, OPEN - VOTES))
  rows.push([`vote, ${book.openSlots()} open slots`, await votes(book, VOTES)])
  rows.push(['raw write+fdatasync again', await rawFdatasync(VOTES)])
  const floor = median([...(rows[0]?.[1] ?? []), ...(rows[3]?.[1] ?? [])])
  console.log(`signed-vote record, ${VOTES} timed votes per row, folder ${dir}`)
  for (const [name, xs] of rows) {
    console.log(
      `${name.padEnd(32)} median ${ms(median(xs)).padStart(11)}  p90 ${ms(p90(xs)).padStart(11)}  ×${(median(xs) / floor).toFixed(1)} raw`,
    )
  }
} finally {
  await rm(dir, { recursive: true, force: true })
}
