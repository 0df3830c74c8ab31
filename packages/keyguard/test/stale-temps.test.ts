/**
 * Leftovers of atomic writes cut by a crash (`.tmp-<name>.<pid>.<random>`): removed at start
 * when their writer is gone, kept while it runs (another process writing the same folder).
 */
import { readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Libp2p } from '@libp2p/interface'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createKeyguard } from '../src/index.ts'
import { removeStaleTemps } from '../src/store/fs-atomic.ts'
import {
  type Chain,
  chainClientFor,
  createNode,
  type KeyguardParts,
  keyguardParts,
  quietLogger,
} from './helpers/world.ts'

/** Above Linux's largest pid_max (2^22): never a running process. */
const DEAD_PID = 9_999_999
const crashed = (name: string) => `.tmp-${name}.${DEAD_PID}.a1b2c3d4e5f6`
/** The test runner's parent: alive for as long as this test runs. */
const running = (name: string) => `.tmp-${name}.${process.ppid}.0f0e0d0c0b0a`

let parts: KeyguardParts
let chain: Chain | undefined
let node: Libp2p | undefined

beforeAll(async () => {
  parts = await keyguardParts()
})

afterAll(async () => {
  await node?.stop()
  await chain?.anvil.stop()
  await parts?.cleanup()
})

describe('removeStaleTemps', () => {
  it("removes a dead writer's temp and a pid-less one, keeps a running writer's and other files", async () => {
    const dir = join(parts.dir, 'unit')
    await import('node:fs/promises').then((fs) => fs.mkdir(dir))
    const names = [
      crashed('a.json'),
      '.tmp-b.json.a1b2c3d4e5f6',
      running('c.json'),
      'd.json',
      'tmp-e.json',
    ]
    for (const n of names) await writeFile(join(dir, n), 'x')
    expect(await removeStaleTemps(dir)).toBe(2)
    expect((await readdir(dir)).sort()).toEqual([running('c.json'), 'd.json', 'tmp-e.json'].sort())
    expect(await removeStaleTemps(join(dir, 'missing'))).toBe(0)
  })
})

describe('keyguard start', () => {
  it('cleans a crashed grant-cursor write from its data folder', async () => {
    const { setupChain } = await import('./helpers/world.ts')
    ;[chain, node] = await Promise.all([setupChain(), createNode()])
    await writeFile(join(parts.dir, crashed('grant-cursor.json')), '{"version":1')
    await writeFile(join(parts.dir, running('grant-cursor.json')), '{"version":1')
    const keyguard = createKeyguard({
      dataDir: parts.dir,
      confirmations: 0,
      startBlock: chain.addresses.deployBlock,
      pollIntervalMs: 50,
    })({
      sealer: parts.sealer,
      keyStore: parts.keyStore,
      journal: parts.journal,
      chain: chainClientFor(chain),
      libp2p: node,
      logger: quietLogger,
    })
    await keyguard.start()
    try {
      const left = (await readdir(parts.dir)).filter((n) => n.startsWith('.tmp-'))
      expect(left).toEqual([running('grant-cursor.json')])
    } finally {
      await keyguard.stop()
    }
  })
})
