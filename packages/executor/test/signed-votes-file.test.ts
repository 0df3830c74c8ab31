/**
 * The verifier's signed-vote record in its data folder (ADR 0093), on the real file system with
 * the CLI's atomic write: the digest is on disk before the key is asked, the signature before it
 * is returned; a reopened record gives the stored signature for the same digest and refuses
 * another; settled jobs' rounds are pruned and closed, and the record is bounded.
 *
 * The file is an append-only log (version 2, ADR 0093 amendment by helper 136): a last line cut at
 * any byte (a crash mid-append, never acknowledged) is dropped and the lines before it stand;
 * anything else (a byte changed or a line dropped before the end, another version or key, a
 * missing first line) is refused (typed), never read as empty. A version-1 file is carried over
 * with each slot's job where it can be told. A process killed with SIGKILL mid-append keeps every
 * vote it acknowledged.
 */
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Address, privateKeySigner, toHex } from '@digicap/capsule-core'
import { writeFileAtomic } from '@digicap/cli-kit'
import { beforeRoundId, type PbftVoteSlot, pbftDomain, SignedVoteError } from '@digicap/committee'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { decodeSignedVotes, fileSignedVotes } from '../src/node/index.ts'

const key = keccak_256(new TextEncoder().encode('verifier'))
const me = privateKeySigner(key).address
const other = privateKeySigner(keccak_256(new TextEncoder().encode('another'))).address
const domain = pbftDomain(31337n, '0x5FbDB2315678afecb367f032d93F642f64180aa3')
const round = (n: number) => keccak_256(new TextEncoder().encode(`job-${n}`))
const slot = (n: number, phase: PbftVoteSlot['phase'] = 'observation', view = 0n) => ({
  domain,
  jobId: round(n),
  phase,
  view,
})
const digest = (s: string) => keccak_256(new TextEncoder().encode(s))
const sig = (b: number) => new Uint8Array(65).fill(b)
const CHILD = join(import.meta.dirname, 'scripts', 'signed-votes-child.ts')

let dir: string
let path: string
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'signed-votes-'))
  path = join(dir, 'signed-votes.json')
})
afterEach(async () => {
  await rm(dir, { recursive: true, force: true })
})

const open = (o: {
  create?: boolean
  signer?: Address
  maxEntries?: number
  maxClosed?: number
  compactBytes?: number
}) => fileSignedVotes({ path, signer: o.signer ?? me, ...o })({ writeFileAtomic })

/** Opening refuses with `reason`. */
async function refused(reason: string, o: Parameters<typeof open>[0] = {}): Promise<void> {
  const err = await open(o).then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(SignedVoteError)
  expect(err).toMatchObject({ reason, code: 'PBFT_SIGNED_VOTE' })
  expect((err as SignedVoteError).hint).toBeTruthy()
}

/** Slot 1 signed (digest a), slot 2 signed (digest b): the file and where its last line starts. */
async function twoVotes(): Promise<{ whole: string; lastStart: number; middleStart: number }> {
  const record = await open({ create: true })
  await record.sign(me, slot(1), digest('a'), async () => sig(1))
  await record.sign(me, slot(2), digest('b'), async () => sig(2))
  const whole = await readFile(path, 'utf8')
  const lines = whole.split('\n')
  expect(lines.length).toBe(6) // the head, four changes, and the empty string after the last \n
  const lastStart = whole.length - (lines[4] as string).length - 1
  const middleStart = (lines[0] as string).length + 1 + (lines[1] as string).length + 1
  return { whole, lastStart, middleStart }
}

describe('the signed-vote record file', () => {
  it('holds the digest before the key is asked, and the signature before it is returned', async () => {
    const record = await open({ create: true })
    let onDisk = ''
    const got = await record.sign(me, slot(1), digest('a'), async () => {
      onDisk = await readFile(path, 'utf8')
      return sig(1)
    })
    expect(onDisk).toContain(toHex(digest('a')))
    expect(onDisk).not.toContain(toHex(sig(1)))
    expect(got).toEqual({ signature: sig(1), stored: false })
    expect(await readFile(path, 'utf8')).toContain(toHex(sig(1)))
    expect((await stat(path)).mode & 0o777).toBe(0o600)
  })

  it('reopened: the same digest gets the stored signature (the key is not asked), another is refused', async () => {
    await (await open({ create: true })).sign(me, slot(1), digest('a'), async () => sig(1))
    const again = await open({})
    let asked = 0
    const ask = async () => {
      asked++
      return sig(2)
    }
    expect(await again.sign(me, slot(1), digest('a'), ask)).toEqual({
      signature: sig(1),
      stored: true,
    })
    await expect(again.sign(me, slot(1), digest('b'), ask)).rejects.toMatchObject({
      reason: 'conflict',
    })
    // Another slot of the round (the prepare, or view 1's observation) is its own.
    await again.sign(me, slot(1, 'prepare'), digest('b'), ask)
    await again.sign(me, slot(1, 'observation', 1n), digest('b'), ask)
    expect(asked).toBe(2)
  })

  it('a crash between the digest and the signature: the same digest is signed again, another refused', async () => {
    const record = await open({ create: true })
    // The key never answers: the process dies with the digest on disk and no signature.
    void record.sign(me, slot(1), digest('a'), () => new Promise(() => {}))
    await expect.poll(async () => readFile(path, 'utf8')).toContain(toHex(digest('a')))
    const restarted = await open({})
    await expect(
      restarted.sign(me, slot(1), digest('b'), async () => sig(2)),
    ).rejects.toMatchObject({ reason: 'conflict' })
    expect(await restarted.sign(me, slot(1), digest('a'), async () => sig(3))).toEqual({
      signature: sig(3),
      stored: false,
    })
  })

  it('a last line cut at any byte is dropped (never acknowledged); the lines before it stand', async () => {
    const { whole, lastStart } = await twoVotes()
    // Every cut inside the last line, its newline included (a cut after it is the whole file).
    for (let at = lastStart; at < whole.length; at++) {
      await writeFile(path, whole.slice(0, at))
      const reopened = await open({})
      // Slot 1 whole; slot 2's digest stands, its signature (the cut line) is gone.
      let asked = 0
      const ask = async () => {
        asked++
        return sig(9)
      }
      expect(await reopened.sign(me, slot(1), digest('a'), ask)).toEqual({
        signature: sig(1),
        stored: true,
      })
      await expect(reopened.sign(me, slot(2), digest('c'), ask)).rejects.toMatchObject({
        reason: 'conflict',
      })
      expect(await reopened.sign(me, slot(2), digest('b'), ask)).toEqual({
        signature: sig(9),
        stored: false,
      })
      expect(asked).toBe(1)
    }
  })

  it('a byte changed or a line dropped before the end, or another version or key, is refused', async () => {
    const { whole, middleStart } = await twoVotes()
    // Every byte of the last three lines changed (slot 1's signature, slot 2's digest and
    // signature): in the middle, and the last line whole (no cut: a changed newline before it
    // would merge an acknowledged line into it).
    for (let at = middleStart; at < whole.length - 1; at++) {
      const changed = whole[at] === 'e' ? 'f' : 'e'
      await writeFile(path, `${whole.slice(0, at)}${changed}${whole.slice(at + 1)}`)
      await refused('corrupt')
    }
    const lines = whole.split('\n')
    const cases: string[] = [
      // The last line's checksum off (a whole line, newline and all: not a cut).
      whole.replace(/[0-9a-f]{8}"}\n$/, 'deadbeef"}\n'),
      // A middle line dropped: the next line's checksum chains over it.
      [lines[0], lines[1], lines[3], lines[4], ''].join('\n'),
      // Cut inside the first line: no record at all.
      whole.slice(0, 40),
      '',
      whole.replace('"version":2', '"version":3'),
      '[]\n',
    ]
    for (const text of cases) {
      await writeFile(path, text)
      await refused('corrupt')
    }
    await writeFile(path, whole)
    await refused('identity', { signer: other })
  })

  it('a version-1 record is read and carried over: its slots stand, their jobs told where they can be', async () => {
    const job = round(7)
    const lone = round(8)
    const body = {
      version: 1,
      signer: me.toLowerCase(),
      entries: [
        // Job 7's before round and final round; job 8's before round only.
        { slot: 'b7', round: toHex(beforeRoundId(job)), digest: toHex(digest('b7')) },
        {
          slot: 'f7',
          round: toHex(job),
          digest: toHex(digest('f7')),
          signature: toHex(sig(7)),
        },
        { slot: 'b8', round: toHex(beforeRoundId(lone)), digest: toHex(digest('b8')) },
      ],
      closed: [],
    }
    const sha256 = createHash('sha256').update(JSON.stringify(body)).digest('hex')
    await writeFile(path, `${JSON.stringify({ ...body, sha256 })}\n`)
    const record = await open({})
    expect(record.openJobs().sort()).toEqual([toHex(job), toHex(beforeRoundId(lone))].sort())
    const now = decodeSignedVotes(await readFile(path, 'utf8'), path)
    expect(now.entries.map((e) => [e.slot, e.job])).toEqual([
      ['b7', toHex(job)],
      ['f7', toHex(job)],
      ['b8', undefined],
    ])
    expect(JSON.parse((await readFile(path, 'utf8')).split('\n')[0] as string)).toMatchObject({
      version: 2,
    })
    // Closing job 7 prunes both its rounds; job 8's slot stays until its round is closed.
    await record.close([beforeRoundId(job), job])
    expect(record.openSlots()).toBe(1)
  })

  it('a missing record is refused unless asked to create one', async () => {
    await refused('missing')
    await open({ create: true })
    expect(JSON.parse(await readFile(path, 'utf8'))).toMatchObject({
      version: 2,
      signer: me.toLowerCase(),
      entries: [],
    })
    await open({}) // there now
  })

  it('closing a settled job prunes its rounds and refuses them after; open slots are bounded', async () => {
    const record = await open({ create: true, maxEntries: 4, maxClosed: 2 })
    for (const n of [1, 2]) {
      for (const phase of ['observation', 'prepare'] as const) {
        await record.sign(me, slot(n, phase), digest(`${n}${phase}`), async () => sig(n))
      }
    }
    await expect(record.sign(me, slot(3), digest('3'), async () => sig(3))).rejects.toMatchObject({
      reason: 'full',
    })
    await record.close([round(1)])
    await record.sign(me, slot(3), digest('3'), async () => sig(3))
    const reopened = await open({ maxEntries: 4, maxClosed: 2 })
    // Written whole at the start: job 1's slots are gone from the file.
    expect(await readFile(path, 'utf8')).not.toContain(toHex(digest('1observation')))
    const size = (await readFile(path, 'utf8')).length
    await expect(
      reopened.sign(me, slot(1, 'commit'), digest('c'), async () => sig(1)),
    ).rejects.toMatchObject({ reason: 'closed' })
    // Closed rounds kept at most maxClosed: the oldest is forgotten.
    await reopened.close([round(4)])
    await reopened.close([round(5)])
    expect((await open({ maxClosed: 2 })).snapshot().closed).toEqual([
      toHex(round(4)),
      toHex(round(5)),
    ])
    expect(size).toBeLessThan(2048)
  })

  it('the log is written whole again once it outgrows its bound', async () => {
    const record = await open({ create: true, compactBytes: 2000 })
    for (let n = 0; n < 40; n++) {
      await record.sign(me, slot(n), digest(`${n}`), async () => sig(n))
      if (n % 2 === 1) await record.close([round(n), round(n - 1)])
    }
    const text = await readFile(path, 'utf8')
    // 100 changes of ~300 bytes: without compaction some 30 KB.
    expect(text.length).toBeLessThan(2000 + 4000)
    expect(decodeSignedVotes(text, path)).toMatchObject({ entries: [] })
    expect((await open({})).snapshot().closed.length).toBe(40)
  })

  it('a write that fails refuses the vote, and every later one (fail closed)', async () => {
    const record = await fileSignedVotes({ path, signer: me, create: true })({
      writeFileAtomic,
      appendLine: async () => {
        throw new Error('ENOSPC')
      },
    })
    let asked = 0
    await expect(
      record.sign(me, slot(1), digest('x'), async () => {
        asked++
        return sig(1)
      }),
    ).rejects.toMatchObject({ reason: 'io' })
    await expect(record.sign(me, slot(2), digest('y'), async () => sig(2))).rejects.toMatchObject({
      reason: 'io',
    })
    expect(asked).toBe(0)
  })

  it('killed with SIGKILL mid-append: every acknowledged vote stands, no other digest is signed', async () => {
    for (const afterMs of [150, 400, 700]) {
      await rm(path, { force: true })
      const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', CHILD], {
        env: { ...process.env, SIGNED_VOTES_CHILD: JSON.stringify({ path, signer: me }) },
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      let out = ''
      child.stdout.on('data', (d) => {
        out += d
      })
      const exited = new Promise<void>((resolve) => child.on('close', () => resolve()))
      await expect.poll(() => out.length > 0, { timeout: 20_000, interval: 5 }).toBe(true)
      await new Promise((r) => setTimeout(r, afterMs))
      child.kill('SIGKILL')
      await exited
      // Only whole lines were acknowledged (a line cut in the pipe is a vote not yet printed).
      const acknowledged = out
        .split('\n')
        .slice(0, -1)
        .map((l) => Number(l))
      expect(acknowledged.length).toBeGreaterThan(5)
      const reopened = await open({})
      for (const n of acknowledged) {
        const s = {
          domain,
          jobId: keccak_256(new TextEncoder().encode(`job-${n >> 2}`)),
          phase: (['pre-prepare', 'prepare', 'commit', 'observation'] as const)[n % 4] ?? 'commit',
          view: 0n,
        }
        await expect(
          reopened.sign(me, s, digest('another'), async () => sig(0)),
        ).rejects.toMatchObject({ reason: 'conflict' })
        const again = await reopened.sign(
          me,
          s,
          keccak_256(new TextEncoder().encode(`digest-${n}`)),
          async () => sig(0),
        )
        expect(again).toEqual({ signature: new Uint8Array(65).fill(n % 256), stored: true })
      }
    }
  }, 60_000)
})
