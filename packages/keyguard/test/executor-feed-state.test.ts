/**
 * The executor feed's saved state is a cache: a file that does not parse, names another chain or
 * AccessController, or holds a bad address is ignored (the feed reads from `startBlock` as on a
 * first start, warns, never crashes), and a good one is resumed from. Real anvil; the chain
 * client is only wrapped to record which ranges were read.
 */
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { executorDirectory } from '../src/fast-path/executor-directory.ts'
import { executorFeed } from '../src/fast-path/executor-feed.ts'
import type { ChainClient } from '../src/index.ts'
import { type KeyguardWorld, keyguardWorld } from './helpers/keyguard-world.ts'
import { chainClientFor } from './helpers/world.ts'

let w: KeyguardWorld
let dir: string
let peer: Uint8Array

beforeAll(async () => {
  // The registered executor's node is all the feed needs to find; no capsule, no keyguard.
  w = await keyguardWorld({ capsules: 0, keyguard: false })
  peer = w.exec.node.peerId.toMultihash().bytes
  await w.chain.anvil.provider.send('anvil_mine', ['0x12c'])
  dir = w.parts.dir
}, 60_000)

afterAll(() => w?.stop())

async function runFeed(file: string) {
  const real = chainClientFor(w.chain)
  const reads: number[] = []
  const counted: ChainClient = Object.create(real)
  counted.nodeRegistrations = (from, to) => {
    reads.push(from)
    return real.nodeRegistrations(from, to)
  }
  const warnings: string[] = []
  const directory = executorDirectory()({ chain: counted })
  const feed = executorFeed({
    file,
    startBlock: w.chain.addresses.deployBlock,
    pollIntervalMs: 60_000,
  })({
    chain: counted,
    directory,
    logger: { info: () => {}, warn: (msg) => warnings.push(msg) },
  })
  await feed.start()
  await feed.stop()
  return { reads, warnings, knows: directory.knowsPeer(peer) }
}

describe('executor feed saved state', () => {
  it('ignores a corrupt, foreign or malformed file and reads from the start', async () => {
    const file = join(dir, 'executor-feed.json')
    const good = await runFeed(file)
    expect(good.reads[0]).toBe(w.chain.addresses.deployBlock)
    expect(good.knows).toBe(true)
    const saved = JSON.parse(await readFile(file, 'utf8'))
    expect(saved.executors).toEqual([[w.chain.executor.address, Buffer.from(peer).toString('hex')]])

    const resumed = await runFeed(file)
    expect(resumed.reads[0]).toBe(saved.next - 64)
    expect(resumed.knows).toBe(true)

    for (const bad of [
      '{"version":1,',
      JSON.stringify({ ...saved, chainId: '1' }),
      JSON.stringify({ ...saved, accessController: w.chain.addresses.nodeRegistry }),
      JSON.stringify({ ...saved, executors: [['0xnot-an-address', 'aa']] }),
      JSON.stringify({ ...saved, next: -5 }),
      JSON.stringify({ ...saved, version: 2 }),
    ]) {
      await writeFile(file, bad)
      const r = await runFeed(file)
      expect(r.reads[0], bad).toBe(w.chain.addresses.deployBlock)
      expect(r.knows, bad).toBe(true)
    }
  }, 60_000)
})
