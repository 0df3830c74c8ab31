/**
 * Several `pi-node seal` processes at once on one data folder (real anvil, software sealer): both
 * send transactions from the owner account (policy deployment, registration), so without the
 * owner-transaction lock they read the same pending nonce and one of them fails.
 */
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connectDigicap } from '@digicap/contracts'
import { type Anvil, startAnvil } from '@digicap/contracts/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Doc, runJson } from './helpers/cli.ts'

describe('concurrent pi-node seal (real anvil, three processes)', () => {
  let anvil: Anvil
  let dir: string
  let env: Record<string, string>
  let init: Doc

  beforeAll(async () => {
    anvil = await startAnvil()
    dir = await mkdtemp(join(tmpdir(), 'pi-node-concurrent-'))
    env = {
      DIGICAP_DATA_DIR: join(dir, 'node'),
      DIGICAP_RPC_URL: anvil.rpcUrl,
    }
    init = await runJson(
      ['init', '--deploy', '--sealer', 'software', '--allow-insecure-sealer', '--json'],
      env,
    )
    expect(init.code).toBe(0)
  }, 120_000)

  afterAll(async () => {
    await anvil?.stop()
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  it('three seals started together all succeed and are registered to the owner', async () => {
    const files = await Promise.all(
      [1, 2, 3].map(async (i) => {
        const f = join(dir, `data-${i}.txt`)
        await writeFile(f, `capsule ${i}\n`)
        return f
      }),
    )
    const runs = await Promise.all(
      files.map((f) => runJson(['seal', f, '--policy', 'maxRuns(2)', '--json'], env)),
    )
    for (const r of runs) {
      expect(r.stderr).not.toContain('error[')
      expect(r.code).toBe(0)
    }
    const ids = new Set(runs.map((r) => r.capsuleId))
    expect(ids.size).toBe(3)
    const { capsuleRegistry } = connectDigicap(init.contracts, anvil.provider)
    for (const r of runs) {
      expect(await capsuleRegistry.ownerOf(r.capsuleId)).toBe(init.owner.address)
    }
    // The lock is gone once nobody holds it.
    expect(await readdir(env.DIGICAP_DATA_DIR as string)).not.toContain('owner-tx.lock')
  }, 240_000)
})
