/**
 * The capsule's CID is reproducible by a stock IPFS tool (capsule-core SPEC §9): for each
 * size, the CID `heliaCapsuleStore.put` returns equals the one `ipfs-car pack --no-wrap`
 * prints for the same file, and, for the all-zero files the SPEC lists, the known CID there.
 */
import { spawn } from 'node:child_process'
import { createWriteStream, existsSync, readFileSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { finished } from 'node:stream/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createDigicapNode,
  type DigicapNode,
  heliaCapsuleStore,
  UNIXFS_CHUNK_SIZE,
  UNIXFS_MAX_LINKS,
} from '../src/index.ts'

const IPFS_CAR = new URL('../node_modules/.bin/ipfs-car', import.meta.url).pathname
/** The SPEC's numbers, not the implementation's constants, so a changed constant fails here. */
const MiB = 1_048_576
const MAX_LINKS = 1024

/** The all-zero files of the SPEC's table (`head -c SIZE /dev/zero`) and their CIDs. */
const KNOWN_ZERO_CIDS: Array<[size: number, cid: string]> = [
  [0, 'bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku'],
  [1, 'bafkreidogqfzz75tpkmjzjke425xqcrmpcib2p5tg44hnbirumdbpl5adu'],
  [MiB, 'bafkreibq4fevl27rgurgnxbp7adh42aqiyd6ouflxhj3gzmcxcxzbh6lla'],
  [MiB + 1, 'bafybeihd4yzq7n5umhjngdum4r6k2to7egxfkf2jz6thvwzf6djus22cmq'],
  [MAX_LINKS * MiB + 1, 'bafybeigx4uyebjbq65346xh6cjrt6yshbdudzudhnqecwbzvymslxj7gje'],
]

/** `ipfs-car pack FILE --no-wrap`: the CAR goes to stdout (dropped), the root CID to stderr. */
function ipfsCarCid(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(IPFS_CAR, ['pack', file, '--no-wrap'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    let err = ''
    child.stderr.on('data', (d) => {
      err += d
    })
    child.on('error', reject)
    child.on('close', (code) =>
      code === 0 ? resolve(err.trim()) : reject(new Error(`ipfs-car exited ${code}: ${err}`)),
    )
  })
}

/** Writes `size` bytes, chunk after chunk, each 1 MiB slice filled by `fill(sliceIndex)`. */
async function writeSized(path: string, size: number, fill: (i: number) => Uint8Array) {
  const out = createWriteStream(path)
  for (let off = 0, i = 0; off < size; off += MiB, i++) {
    const slice = fill(i).subarray(0, Math.min(MiB, size - off))
    if (!out.write(slice)) await new Promise<void>((r) => out.once('drain', () => r()))
  }
  out.end()
  await finished(out)
}

/** A slice whose bytes depend on its index and position, so leaf order changes the CID. */
function patterned(i: number): Uint8Array {
  const b = new Uint8Array(MiB)
  for (let j = 0; j < MiB; j++) b[j] = (j * 31 + i * 7) & 0xff
  return b
}

describe('capsule CID = the stock tool CID (unixfs-v1-2025)', () => {
  let dir: string
  let node: DigicapNode
  beforeAll(async () => {
    // /dev/shm when there is one: the two-level case writes 1 GiB.
    dir = await mkdtemp(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'digicap-cid-'))
    node = await createDigicapNode()
  })
  afterAll(async () => {
    await node?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it("the SPEC's table lists exactly these files and CIDs", () => {
    const spec = readFileSync(new URL('../../capsule-core/SPEC.md', import.meta.url), 'utf8')
    const section = spec.slice(spec.indexOf('## 9. Storage address (CID)'), spec.indexOf('## 10.'))
    const rows = [
      ...section.matchAll(/^\| ([0-9 ]+?) (?:\([^)]*\) )?\|[^|]*\| `(b[a-z2-7]+)` \|$/gm),
    ]
    expect(rows.map((m) => [Number((m[1] as string).replace(/ /g, '')), m[2]])).toEqual(
      KNOWN_ZERO_CIDS,
    )
  })

  it('the store cuts with the parameters of the SPEC', () => {
    expect([UNIXFS_CHUNK_SIZE, UNIXFS_MAX_LINKS]).toEqual([MiB, MAX_LINKS])
  })

  for (const [size, known] of KNOWN_ZERO_CIDS.slice(0, 4)) {
    it(`${size} zero bytes: put, ipfs-car and the SPEC's CID agree`, async () => {
      const file = join(dir, `zero-${size}`)
      await writeFile(file, new Uint8Array(size))
      const [ours, car] = await Promise.all([
        heliaCapsuleStore(node.helia).put({ path: file }),
        ipfsCarCid(file),
      ])
      expect(ours).toBe(known)
      expect(car).toBe(known)
    })
  }

  for (const size of [1, MiB - 1, MiB, MiB + 1, 3 * MiB + 5]) {
    it(`${size} patterned bytes: put and ipfs-car agree`, async () => {
      const file = join(dir, `pattern-${size}`)
      await writeSized(file, size, patterned)
      const [ours, car] = await Promise.all([
        heliaCapsuleStore(node.helia).put({ path: file }),
        ipfsCarCid(file),
      ])
      expect(ours).toBe(car)
    })
  }

  it('1024 MiB + 1 zero bytes (1025 leaves: a two-level tree) agree', async () => {
    const [size, known] = KNOWN_ZERO_CIDS[4] as [number, string]
    const file = join(dir, 'zero-two-levels')
    const zeros = new Uint8Array(MiB)
    await writeSized(file, size, () => zeros)
    const [ours, car] = await Promise.all([
      heliaCapsuleStore(node.helia).put({ path: file }),
      ipfsCarCid(file),
    ])
    expect(ours).toBe(known)
    expect(car).toBe(known)
  }, 180_000)
})
