/**
 * The SDK end to end, as a third party gets it. The example project at the repository's root (`examples/sdk`), installed as a third party
 * installs it: the workspace's packages packed (`pnpm pack`), installed offline from the pnpm
 * store into a temp copy outside the workspace. Its three scripts — each the README example
 * of one call — then seal, run (fast and chain path) and receive against the demo's chain:
 * real anvil, real swtpm keyguard in a pi-node, real libp2p on loopback. Then, in process,
 * the refusals (a third run past `maxRuns(2)`), an executor and an owner whose keys are not in
 * this process (anvil's RPC, a "device" signing transactions).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { type DigicapSigner, type Hex, rpcCall, toHex } from '@digicap/capsule-core'
import { nodeAccountSigner } from '@digicap/contracts/testing'
import { JsonRpcProvider, Transaction, Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  generateIdentity,
  generateReceiverKey,
  localSigner,
  openReceiver,
  SignerUnsupportedError,
} from '../src/index.ts'
import { registerExecutor, runCapsule } from '../src/run.ts'
import { sealAndPublish } from '../src/seal.ts'
import { type DemoChain, startDemoChain } from './harness/demo-chain.ts'

const exec = promisify(execFile)
const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')
const EXAMPLE = join(REPO, 'examples', 'sdk')
/**
 * The example's `@digicap/*` dependencies and every workspace package they need at run time
 * (their `dependencies`, followed), by folder name: a new dependency is packed without a list
 * to keep.
 */
async function workspaceClosure(roots: readonly string[]): Promise<string[]> {
  const found = new Set<string>()
  const visit = async (name: string): Promise<void> => {
    if (found.has(name)) return
    found.add(name)
    const pkg = JSON.parse(await readFile(join(REPO, 'packages', name, 'package.json'), 'utf8'))
    for (const dep of Object.keys(pkg.dependencies ?? {}))
      if (dep.startsWith('@digicap/')) await visit(dep.slice('@digicap/'.length))
  }
  for (const r of roots) await visit(r)
  return [...found]
}

// biome-ignore lint/suspicious/noExplicitAny: the scripts' JSON lines
type Line = Record<string, any>

let tmp: string
let project: string
let chain: DemoChain
// Shared by the cases below: what the scripts started and made.
let receive: ReturnType<typeof script>
let seal: ReturnType<typeof script>
let sealed: Line
let ready: Line
const executorKey = generateIdentity()
const executorIdentity = generateIdentity()
const timings: Record<string, number> = {}
const started: ChildProcess[] = []

async function timed<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const t = performance.now()
  try {
    return await fn()
  } finally {
    timings[name] = Math.round(performance.now() - t)
  }
}

/** Packs the packages and installs the example project from the tarballs, offline. */
async function installExample(): Promise<void> {
  const tgz = join(tmp, 'tgz')
  await mkdir(tgz)
  const example = JSON.parse(await readFile(join(EXAMPLE, 'package.json'), 'utf8'))
  const PACKED = await workspaceClosure(
    Object.keys(example.dependencies).map((d) => d.slice('@digicap/'.length)),
  )
  for (const name of PACKED) {
    await exec('pnpm', ['pack', '--pack-destination', tgz], { cwd: join(REPO, 'packages', name) })
  }
  await cp(EXAMPLE, project, { recursive: true, filter: (src) => !src.includes('node_modules') })
  const tarball = (name: string) => `file:${join(tgz, `digicap-${name}-0.0.0.tgz`)}`
  const pkg = JSON.parse(await readFile(join(project, 'package.json'), 'utf8'))
  for (const dep of Object.keys(pkg.dependencies))
    pkg.dependencies[dep] = tarball(dep.slice('@digicap/'.length))
  await writeFile(join(project, 'package.json'), JSON.stringify(pkg, null, 2))
  // Inner @digicap/* dependencies (`0.0.0` in the tarballs) resolve to the tarballs too.
  const overrides = PACKED.map((n) => `  "@digicap/${n}": "${tarball(n)}"`).join('\n')
  const ws = await readFile(join(project, 'pnpm-workspace.yaml'), 'utf8')
  await writeFile(join(project, 'pnpm-workspace.yaml'), `${ws.trimEnd()}\n${overrides}\n`)
  const { stdout: store } = await exec('pnpm', ['store', 'path'], { cwd: REPO })
  await exec('pnpm', ['install', '--offline', '--store-dir', store.trim()], { cwd: project })
}

/** Starts `node <script>` in the project; resolves its JSON lines as they come. */
function script(name: string, env: Record<string, string>) {
  const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', name], {
    cwd: project,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? tmpdir(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  started.push(child)
  let out = ''
  let err = ''
  child.stdout?.on('data', (d) => {
    out += d
  })
  child.stderr?.on('data', (d) => {
    err += d
  })
  const exited = new Promise<number | null>((r) => child.once('close', (code) => r(code)))
  const lines = (): Line[] =>
    out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Line)
  /** Waits until the script printed `n` JSON lines. */
  const until = async (n: number, ms = 60_000): Promise<Line[]> => {
    const deadline = Date.now() + ms
    let gone = false
    void exited.then(() => {
      gone = true
    })
    while (lines().length < n) {
      if (gone && lines().length < n) throw new Error(`${name} exited:\n${err.slice(-3000)}`)
      if (Date.now() > deadline)
        throw new Error(`${name}: no line ${n} in ${ms} ms:\n${err.slice(-3000)}`)
      await new Promise((r) => setTimeout(r, 50))
    }
    return lines()
  }
  return { child, exited, until, stderr: () => err }
}

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'digicap-example-'))
  project = join(tmp, 'project')
  ;[, chain] = await Promise.all([
    timed('pack+install', installExample),
    timed('chain', startDemoChain),
  ])
}, 150_000)

afterAll(async () => {
  for (const c of started) if (c.exitCode === null) c.kill('SIGKILL')
  await chain?.stop()
  if (tmp) await rm(tmp, { recursive: true, force: true })
  console.log(`example project: ${JSON.stringify(timings)} ms`)
})

describe('examples/sdk, installed from packed tarballs', () => {
  it('seals, runs by the fast and the chain path, and receives both results', async () => {
    const rpc = { RPC_URL: chain.rpcUrl }
    receive = script('receive.ts', rpc)
    ready = (await timed('receiver up', () => receive.until(1)))[0] as Line
    seal = script('seal.ts', {
      ...rpc,
      OWNER_KEY: chain.ownerKey,
      KEYGUARD_CARD: chain.card,
      KEYGUARD_ADDR: chain.keyguard,
      RECEIVER: ready.receiver,
    })
    sealed = (await timed('seal', () => seal.until(1, 90_000)))[0] as Line
    expect(sealed.cid).toMatch(/^b/)

    await chain.fund(localSigner(executorKey).address)
    const run = script('run.ts', {
      ...rpc,
      EXECUTOR_KEY: toHex(executorKey),
      EXECUTOR_IDENTITY: Buffer.from(executorIdentity).toString('hex'),
      CID: sealed.cid,
      PEERS: [chain.keyguard, sealed.addr, ready.addr].join(','),
    })
    const code = await timed('run', () => run.exited)
    expect(code, run.stderr()).toBe(0)
    const runs = await run.until(2)
    expect(runs.map((r) => [r.path, r.output])).toEqual([
      ['fast', 'HELLO CAPSULE'],
      ['chain', 'HELLO CAPSULE'],
    ])

    const got = (await timed('results', () => receive.until(3))).slice(1)
    expect(got.map((r) => r.runId).sort()).toEqual(runs.map((r) => r.runId).sort())
    for (const r of got) {
      expect(r.output).toBe('HELLO CAPSULE')
      expect(r.executor).toBe(localSigner(executorKey).address)
    }
  }, 180_000)

  it('a third run is refused by the policy (maxRuns(2)) with the executor’s typed error', async () => {
    const err = await runCapsule({
      network: 'local',
      rpcUrl: chain.rpcUrl,
      signer: localSigner(executorKey),
      identity: executorIdentity,
      cid: sealed.cid,
      path: 'fast',
      peers: [chain.keyguard, sealed.addr],
    }).catch((e: unknown) => e)
    expect((err as { code?: string }).code).toMatch(/^ACCESS_/)
  })

  it('an executor whose key is not in this process (anvil signs for it) registers and runs by both paths', async () => {
    // anvil's account 1 signs through the RPC (eth_signTypedData_v4, eth_signTransaction):
    // this process only ever sees its address. Every signature it makes is counted.
    const [, address] = (await rpcCall(chain.rpcUrl, 'eth_accounts', [])).result as string[]
    const remote = nodeAccountSigner(chain.rpcUrl, address as string)
    const signed = { typedData: 0, transactions: 0 }
    const signer: DigicapSigner = {
      address: remote.address,
      signTypedData: (td) => {
        signed.typedData++
        return remote.signTypedData(td)
      },
      signTransaction: (u) => {
        signed.transactions++
        return remote.signTransaction?.(u) as Promise<Hex>
      },
    }
    const receiver = await openReceiver({
      network: 'local',
      rpcUrl: chain.rpcUrl,
      key: generateReceiverKey().privateKey,
    })
    const program = new TextEncoder().encode('digicap.output(digicap.inputText().toUpperCase())')
    const capsule = await sealAndPublish({
      network: 'local',
      rpcUrl: chain.rpcUrl,
      owner: localSigner(chain.ownerKey),
      keyguard: chain.card,
      data: new TextEncoder().encode('signed elsewhere'),
      code: { runtime: 'quickjs', entry: 'main.js', files: { 'main.js': program } },
      policy: 'maxRuns(3)',
      receivers: [receiver.id],
      peers: [chain.keyguard],
    })
    try {
      const executor = {
        network: 'local',
        rpcUrl: chain.rpcUrl,
        signer,
        identity: generateIdentity(),
      }
      const peers = [chain.keyguard, capsule.multiaddrs()[0], receiver.multiaddrs()[0]] as string[]
      await registerExecutor({ ...executor, stake: 10n ** 16n })
      expect(signed).toEqual({ typedData: 0, transactions: 1 })
      for (const path of ['fast', 'chain'] as const) {
        const run = await runCapsule({ ...executor, cid: capsule.cid, path, peers })
        expect([run.path, new TextDecoder().decode(run.output)]).toEqual([path, 'SIGNED ELSEWHERE'])
        // The receiver checked the result's signature against the grant's executor on chain.
        const got = await receiver.waitForResult({ runId: run.runId })
        expect([got.executor, new TextDecoder().decode(got.output)]).toEqual([
          remote.address,
          'SIGNED ELSEWHERE',
        ])
      }
      // fast: the access request and the result; chain: the requestAccess transaction and the result
      expect(signed).toEqual({ typedData: 3, transactions: 2 })

      // A signer that signs typed data only still runs by the fast path; the chain path (or a
      // fallback to it) is refused before anything starts.
      const typedOnly = {
        ...executor,
        signer: { address: signer.address, signTypedData: signer.signTypedData },
      }
      const fast = await runCapsule({ ...typedOnly, cid: capsule.cid, path: 'fast', peers })
      expect(new TextDecoder().decode(fast.output)).toBe('SIGNED ELSEWHERE')
      for (const refused of [{ path: 'chain' }, { path: 'fast', fallbackToChain: true }] as const) {
        const err = await runCapsule({ ...typedOnly, ...refused, cid: capsule.cid, peers }).catch(
          (e: unknown) => e,
        )
        expect(err).toBeInstanceOf(SignerUnsupportedError)
      }
    } finally {
      await capsule.stop()
      await receiver.stop()
    }
  }, 120_000)

  it('an owner signer without a local key seals through its own signTransaction (a hardware wallet)', async () => {
    // The "wallet" holds the key; the SDK only sees address, signTypedData, signTransaction.
    const device = new Wallet(chain.ownerKey)
    const local = localSigner(chain.ownerKey as `0x${string}`)
    let signedTransactions = 0
    const owner = {
      address: local.address,
      signTypedData: local.signTypedData,
      signTransaction: async (unsigned: `0x${string}`) => {
        signedTransactions++
        const tx = Transaction.from(unsigned)
        return device.signTransaction(tx) as Promise<`0x${string}`>
      },
    }
    const capsule = await sealAndPublish({
      network: 'local',
      rpcUrl: chain.rpcUrl,
      owner,
      keyguard: chain.card,
      data: new TextEncoder().encode('sealed by a device'),
      policy: 'maxRuns(1)',
    })
    try {
      // policy deployment + registration, each signed by the device
      expect(signedTransactions).toBe(2)
      const receipt = await new JsonRpcProvider(chain.rpcUrl).getTransactionReceipt(
        capsule.registerTransaction,
      )
      expect(receipt?.status).toBe(1)
      expect(receipt?.from.toLowerCase()).toBe(local.address.toLowerCase())
    } finally {
      await capsule.stop()
    }
    // a device that signs as another account is caught before anything is sent
    const liar = {
      ...owner,
      signTransaction: async (unsigned: `0x${string}`) =>
        Wallet.createRandom().signTransaction(Transaction.from(unsigned)) as Promise<`0x${string}`>,
    }
    const err = await sealAndPublish({
      network: 'local',
      rpcUrl: chain.rpcUrl,
      owner: liar,
      keyguard: chain.card,
      data: new TextEncoder().encode('x'),
      policy: 'maxRuns(1)',
    }).catch((e: unknown) => e)
    expect((err as { code?: string }).code).toBe('INVALID_ARGUMENT')
  })

  it('the receiver and the sealer stop cleanly on SIGTERM', async () => {
    receive.child.kill('SIGTERM')
    seal.child.kill('SIGTERM')
    expect(await Promise.all([receive.exited, seal.exited])).toEqual([0, 0])
  })

  it('the SDK README shows each script as it is (so the README examples are what ran)', async () => {
    const readme = await readFile(join(REPO, 'packages', 'sdk', 'README.md'), 'utf8')
    for (const name of ['receive.ts', 'seal.ts', 'run.ts']) {
      const source = (await readFile(join(EXAMPLE, name), 'utf8')).trim()
      expect(readme, `${name} is not in packages/sdk/README.md as it is`).toContain(
        `\`\`\`ts\n${source}\n\`\`\``,
      )
      expect(
        source.split('\n').length,
        `${name} is longer than a short example`,
      ).toBeLessThanOrEqual(20)
    }
  })
})
