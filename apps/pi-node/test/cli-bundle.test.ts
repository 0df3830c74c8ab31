/**
 * The `pi-node` binary runs the CLI as one bundle (`dist/cli-bundle.js`, ADR 0103); the other
 * tests run the sources. Here the binary itself, against a real anvil with a software sealer:
 * `init`, a `seal` (the policy compiled in the child process, whose module is found from the
 * bundle's folder), `status`, `serve` (helia's class found by path inside the bundle). Each run
 * lists the files it loads: a handful of bundle chunks instead of ~280 files, no workspace
 * package or heavy library as a file of its own (solc stays a package, for the compiler's child
 * process), and no chunk a `seal` or `status` loads holds ethers' or libp2p's code (they load
 * with the commands that use them).
 */
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { collectOutput } from '@digicap/cli-kit'
import { connectDigicap } from '@digicap/contracts'
import { type Anvil, startAnvil } from '@digicap/contracts/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const BIN = fileURLToPath(new URL('../bin/pi-node.js', import.meta.url))

/** Prints every module URL the child resolved, on stderr at exit. */
const LIST_MODULES = `data:text/javascript,${encodeURIComponent(`
import { registerHooks } from 'node:module'
const seen = new Set()
registerHooks({ resolve(s, c, next) { const r = next(s, c); seen.add(r.url); return r } })
process.on('exit', () => process.stderr.write('\\nLOADED ' + JSON.stringify([...seen]) + '\\n'))
`)}`

/** Strings only these libraries' code holds: ethers' `getBytes`, libp2p's identify protocol. */
const MARKS = {
  ethers: 'invalid BytesLike value',
  libp2p: '/ipfs/id/1.0.0',
}

/** Workspace packages and the heavy libraries, as files of their own (the bundle holds them). */
const AS_FILES =
  /(packages|@digicap)\/(owner|keyguard|tpm|p2p|contracts|capsule-core|ops|oci|executor)\/|node_modules\/(\.pnpm\/)?(helia|libp2p|ethers|multiformats|@noble|@hpke|cborg|ipfs-unixfs|solc|micro-eth-signer)/

interface BinRun {
  code: number | null
  stdout: string
  stderr: string
  loaded: string[]
}

async function runBin(args: string[], env: Record<string, string>): Promise<BinRun> {
  const child = spawn(process.execPath, ['--import', LIST_MODULES, BIN, ...args], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
  })
  const out = collectOutput(child)
  child.stdin.end()
  const code = await out.exited
  const [stderr, list] = out.stderr().split('\nLOADED ')
  return {
    code,
    stdout: out.stdout(),
    stderr: stderr ?? '',
    loaded: (JSON.parse(list ?? '[]') as string[]).filter((u) => u.startsWith('file:')),
  }
}

/** The loaded files whose text holds `mark`. */
const holding = (loaded: string[], mark: string) =>
  loaded.filter((u) => readFileSync(fileURLToPath(u), 'utf8').includes(mark))

describe('the pi-node binary runs the bundle (ADR 0103)', () => {
  let anvil: Anvil
  let dir: string
  let env: Record<string, string>
  let contracts: Parameters<typeof connectDigicap>[0]

  beforeAll(async () => {
    anvil = await startAnvil()
    dir = await mkdtemp(join(tmpdir(), 'pi-node-bundle-'))
    env = { DIGICAP_DATA_DIR: join(dir, 'node'), DIGICAP_RPC_URL: anvil.rpcUrl }
    const init = await runBin(
      ['init', '--deploy', '--sealer', 'software', '--allow-insecure-sealer', '--json'],
      env,
    )
    expect(init.code, init.stderr).toBe(0)
    contracts = JSON.parse(init.stdout).contracts
  }, 120_000)

  afterAll(async () => {
    await anvil?.stop()
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  it('seal and status run from a few bundle chunks: no package or heavy library as a file, no ethers or libp2p code', async () => {
    const file = join(dir, 'data.bin')
    // past capsule-core's PARALLEL_FILE_MIN_BYTES (32 MiB): the seal and the add's hashing run in
    // lane workers built from the bundle's own function sources
    await writeFile(file, randomBytes(33 * 1024 * 1024 + 5))
    const seal = await runBin(['seal', file, '--policy', 'maxRuns(2)', '--json'], env)
    expect(seal.code, seal.stderr).toBe(0)
    const sealed = JSON.parse(seal.stdout)
    const status = await runBin(['status', '--json'], env)
    expect(status.code, status.stderr).toBe(0)
    expect(JSON.parse(status.stdout).status.capsules).toBe(1)
    const onChain = await connectDigicap(contracts, anvil.provider).capsuleRegistry.getCapsule(
      sealed.capsuleId,
    )
    expect(onChain.cid).toBe(sealed.cid)

    // resolved here (import.meta.resolve from the bundle's folder) for the policy compiler's
    // child process, which loads it: never loaded in this one
    const compiler = /\/contracts\/dist\/compiler\.js$/
    expect(seal.loaded.filter((u) => compiler.test(u))).toHaveLength(1)
    for (const run of [seal, status]) {
      expect(run.loaded.some((u) => u.endsWith('/pi-node/dist/cli-bundle.js'))).toBe(true)
      expect(run.loaded.filter((u) => AS_FILES.test(u) && !compiler.test(u))).toEqual([])
      // ~280 files from the sources' graph; the bundle's chunks, the bin's two cli-kit helpers
      expect(run.loaded.length).toBeLessThan(100)
      for (const mark of Object.values(MARKS)) expect(holding(run.loaded, mark)).toEqual([])
    }
    // the marks are in the bundle (recover's and serve's chunks): the checks above can fail
    const dist = new URL('../dist/', import.meta.url)
    const chunks = readdirSync(dist)
      .filter((f) => f.startsWith('cli-bundle'))
      .map((f) => new URL(f, dist).href)
    for (const mark of Object.values(MARKS)) expect(holding(chunks, mark).length).toBeGreaterThan(0)
    // every chunk a chunk imports is there (a command never run here would fail only for a user)
    const named = new Set(
      chunks.flatMap((url) =>
        [
          ...readFileSync(new URL(url), 'utf8').matchAll(/["']\.\/(cli-bundle-[\w-]+\.js)["']/g),
        ].map((m) => m[1] as string),
      ),
    )
    expect(named.size).toBeGreaterThan(0)
    for (const name of named) expect(existsSync(new URL(name, dist)), name).toBe(true)
  }, 180_000)

  it('serve starts from the bundle (helia and libp2p inside it) and stops on SIGTERM', async () => {
    const child = spawn(process.execPath, ['--import', LIST_MODULES, BIN, 'serve', '--json'], {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
    })
    const out = collectOutput(child)
    const deadline = Date.now() + 60_000
    while (!out.stdout().includes('\n') && child.exitCode === null && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100))
    const ready = JSON.parse(out.stdout().split('\n')[0] as string)
    expect(ready.peerId).toMatch(/^12D3KooW/)
    child.kill('SIGTERM')
    expect(await out.exited).toBe(0)
    const loaded = (JSON.parse(out.stderr().split('\nLOADED ')[1] ?? '[]') as string[]).filter(
      (u) => u.startsWith('file:'),
    )
    expect(loaded.filter((u) => AS_FILES.test(u))).toEqual([])
    expect(holding(loaded, MARKS.libp2p).length).toBeGreaterThan(0)
  }, 120_000)
})
