/**
 * `pi-node seal` streams: its memory does not grow with the capsule (a 96 MiB capsule costs
 * less than 40 MiB more peak RSS than a 1 MiB one; buffering the capsule once would cost 96),
 * and the sealing process loads neither solc (compiled in a child, then cached by source) nor
 * helia or libp2p (the blocks go straight to the on-disk blockstore; libp2p starts only to
 * announce through a running `serve`) nor ethers (the policy's creation and the registration
 * are signed with the owner's key and sent over plain JSON-RPC: `@digicap/contracts/light`).
 * Real anvil, software sealer.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, open, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connectDigicap } from '@digicap/contracts'
import { type Anvil, startAnvil } from '@digicap/contracts/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Doc, runCli, runJson } from './helpers/cli.ts'

/**
 * Lists every module the child resolves and its own peak RSS (`VmHWM`: a spawned child's
 * `resourceUsage().maxRSS` starts at this vitest worker's RSS on Linux), on stderr at exit.
 */
const HOOK = `data:text/javascript,${encodeURIComponent(`
import { registerHooks } from 'node:module'
import { readFileSync } from 'node:fs'
const seen = new Set()
registerHooks({ resolve(s, c, next) { const r = next(s, c); seen.add(r.url); return r } })
const peak = () => Number(/VmHWM:\\s+(\\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1])
process.on('exit', () => process.stderr.write('\\nPROBE ' + JSON.stringify({ loaded: [...seen], maxRssKiB: peak() }) + '\\n'))
`)}`

/** What neither `seal` nor `status` needs: solc, helia, libp2p's node, its transports, ethers. */
const HEAVY =
  /node_modules\/(solc|helia|libp2p|ethers|@helia\/(bitswap|unixfs)|@libp2p\/(gossipsub|tcp|kad-dht))\//

interface Probed {
  code: number | null
  doc: Doc
  loaded: string[]
  maxRssMiB: number
}

async function probed(args: string[], env: Record<string, string>): Promise<Probed> {
  const r = await runCli(args, env, '', ['--import', HOOK])
  const probe = r.stderr.split('\nPROBE ')[1]
  if (!probe) throw new Error(`no probe (exit ${r.code}): ${r.stderr.slice(-2000)}`)
  const { loaded, maxRssKiB } = JSON.parse(probe)
  return { code: r.code, doc: JSON.parse(r.stdout), loaded, maxRssMiB: maxRssKiB / 1024 }
}

/** A file of `mib` MiB of random (incompressible) bytes, written 1 MiB at a time. */
async function writeMiB(path: string, mib: number) {
  const file = await open(path, 'w')
  for (let i = 0; i < mib; i++) await file.write(randomBytes(1024 * 1024))
  await file.close()
}

describe('pi-node seal streams in bounded memory (real anvil)', () => {
  let anvil: Anvil
  let dir: string
  let env: Record<string, string>
  let init: Doc

  beforeAll(async () => {
    anvil = await startAnvil()
    dir = await mkdtemp(join(tmpdir(), 'pi-node-lean-'))
    env = { DIGICAP_DATA_DIR: join(dir, 'node'), DIGICAP_RPC_URL: anvil.rpcUrl }
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

  it('a 96 MiB seal peaks within 40 MiB of a 1 MiB one, without solc, helia, libp2p or ethers', async () => {
    const small = join(dir, 'small.bin')
    const big = join(dir, 'big.bin')
    await Promise.all([writeMiB(small, 1), writeMiB(big, 96)])
    // The first seal compiles the policy (in a child) and fills the cache; both below hit it.
    const first = await runJson(['seal', small, '--policy', 'maxRuns(2)', '--json'], env)
    expect(first.code).toBe(0)
    expect(await readdir(join(dir, 'node', 'policy-cache'))).toHaveLength(1)
    const seal = (file: string) => probed(['seal', file, '--policy', 'maxRuns(2)', '--json'], env)
    const a = await seal(small)
    const b = await seal(big)
    expect([a.code, b.code]).toEqual([0, 0])
    expect(b.doc.capsuleSize).toBeGreaterThan(96 * 1024 * 1024)
    const { capsuleRegistry } = connectDigicap(init.contracts, anvil.provider)
    const registered = await capsuleRegistry.getCapsule(b.doc.capsuleId)
    expect(registered.cid).toBe(b.doc.cid)
    // Registered from the owner's account, with the policy deployed in the same seal.
    expect(registered.owner).toBe(init.owner.address)
    expect(registered.policy).toBe(b.doc.policy)
    expect(await anvil.provider.getCode(b.doc.policy)).not.toBe('0x')
    for (const run of [a, b]) expect(run.loaded.filter((u) => HEAVY.test(u))).toEqual([])
    expect(b.maxRssMiB - a.maxRssMiB).toBeLessThan(40)
  }, 180_000)

  it('status reads the node and the chain without loading helia, libp2p or solc', async () => {
    const s = await probed(['status', '--json'], env)
    expect(s.code).toBe(0)
    expect(s.doc.status.chain.reachable).toBe(true)
    expect(s.loaded.filter((u) => HEAVY.test(u))).toEqual([])
  }, 60_000)
})
