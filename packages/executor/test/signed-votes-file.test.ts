/**
 * The verifier's signed-vote record in its data folder (ADR 0093), on the real file system with
 * the CLI's atomic write: the digest is on disk before the key is asked, the signature before it
 * is returned; a reopened record gives the stored signature for the same digest and refuses
 * another; a record cut, garbled or of another version or key is refused (typed), never read as
 * empty; a missing one is refused unless asked to create it; settled jobs' rounds are pruned and
 * closed, and the record is bounded.
 */
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Address, privateKeySigner, toHex } from '@digicap/capsule-core'
import { writeFileAtomic } from '@digicap/cli-kit'
import { type PbftVoteSlot, pbftDomain, SignedVoteError } from '@digicap/committee'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { fileSignedVotes } from '../src/node/index.ts'

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

let dir: string
let path: string
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'signed-votes-'))
  path = join(dir, 'signed-votes.json')
})
afterEach(async () => {
  await rm(dir, { recursive: true, force: true })
})

const open = (o: { create?: boolean; signer?: Address; maxEntries?: number; maxClosed?: number }) =>
  fileSignedVotes({ path, signer: o.signer ?? me, ...o })({ writeFileAtomic })

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

  it('a torn, truncated, garbled or foreign record is refused, never read as empty', async () => {
    const record = await open({ create: true })
    await record.sign(me, slot(1), digest('a'), async () => sig(1))
    const whole = await readFile(path, 'utf8')
    const cases: [string, string][] = [
      ['torn in the middle', whole.slice(0, Math.floor(whole.length / 2))],
      ['cut to nothing', ''],
      // A byte changed inside a digest: still JSON, the checksum does not hold.
      ['garbled', whole.replace(toHex(digest('a')).slice(2, 10), 'deadbeef')],
      ['an entry dropped', whole.replace(/"entries":\[.*?\]/, '"entries":[]')],
      ['another version', whole.replace('"version":1', '"version":2')],
      ['not a record', '[]'],
    ]
    for (const [, text] of cases) {
      await writeFile(path, text)
      await refused('corrupt')
    }
    await writeFile(path, whole)
    await refused('identity', { signer: other })
  })

  it('a missing record is refused unless asked to create one', async () => {
    await refused('missing')
    await open({ create: true })
    expect(JSON.parse(await readFile(path, 'utf8'))).toMatchObject({
      version: 1,
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
    const size = (await readFile(path, 'utf8')).length
    expect(await readFile(path, 'utf8')).not.toContain(toHex(digest('1observation')))
    await record.sign(me, slot(3), digest('3'), async () => sig(3))
    const reopened = await open({ maxEntries: 4, maxClosed: 2 })
    await expect(
      reopened.sign(me, slot(1, 'commit'), digest('c'), async () => sig(1)),
    ).rejects.toMatchObject({ reason: 'closed' })
    // Closed rounds kept at most maxClosed: the oldest is forgotten.
    await reopened.close([round(4)])
    await reopened.close([round(5)])
    const doc = JSON.parse(await readFile(path, 'utf8')) as { closed: string[] }
    expect(doc.closed).toEqual([toHex(round(4)), toHex(round(5))])
    expect(size).toBeLessThan(2048)
  })

  it('a write that fails refuses the vote, and every later one (fail closed)', async () => {
    const record = await fileSignedVotes({ path, signer: me, create: true })({
      writeFileAtomic: async (p, text) => {
        if (text.includes(toHex(digest('x')))) throw new Error('ENOSPC')
        await writeFileAtomic(p, text)
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
})
