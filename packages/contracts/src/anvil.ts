import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { HDNodeWallet, type JsonRpcProvider, Wallet } from 'ethers'
import { AnvilError } from './errors.ts'
import { createProvider } from './provider.ts'

/** anvil's default mnemonic; its accounts are public test keys, funded only on local chains. */
export const ANVIL_MNEMONIC = 'test test test test test test test test test test test junk'

export interface StartAnvilOptions {
  /** Chain id (default 31337). */
  chainId?: number
  /** Funded accounts to derive (default 10). */
  accounts?: number
  /** Balance of each account in ETH (default 10000). */
  balance?: number
  /** Path of the anvil binary (default: `ANVIL_PATH`, else the `@foundry-rs/anvil-<platform>` package). */
  binary?: string
  /** Block time in seconds; default: a block per transaction (automine). */
  blockTime?: number
  /** Milliseconds to wait for anvil to answer (default 15000). */
  startTimeoutMs?: number
  /** Extra command-line arguments for anvil. */
  args?: readonly string[]
}

export interface Anvil {
  readonly rpcUrl: string
  readonly chainId: bigint
  readonly port: number
  readonly pid: number
  /**
   * The folder anvil writes its older blocks' states to (`--cache-path`), a fresh one in the
   * system's temp folder, removed by `stop()` or when the process exits. anvil's default is one
   * under `~/.foundry/anvil/tmp` that it never removes, even when stopped by a signal.
   */
  readonly cachePath: string
  readonly provider: JsonRpcProvider
  /** Addresses of the funded accounts, in anvil's order. */
  readonly accounts: readonly string[]
  /** Wallets of the funded accounts, connected to `provider`. */
  readonly signers: readonly Wallet[]
  /** `evm_snapshot`: returns an id for `revert`. */
  snapshot(): Promise<string>
  /** `evm_revert` to a snapshot (a snapshot is used up by reverting to it). */
  revert(id: string): Promise<void>
  /** Moves the chain's clock forward and mines a block. */
  increaseTime(seconds: number): Promise<void>
  /** Kills anvil and waits for it to exit. */
  stop(): Promise<void>
}

const PLATFORMS: Record<string, string> = {
  'linux-x64': 'linux-amd64',
  'linux-arm64': 'linux-arm64',
  'darwin-x64': 'darwin-amd64',
  'darwin-arm64': 'darwin-arm64',
}

/**
 * Finds the anvil binary: `ANVIL_PATH`, else the `@foundry-rs/anvil-<platform>` package,
 * resolved from this package or from the current project (install it as a dev dependency
 * where anvil is started; it is not a dependency of `@digicap/contracts`).
 *
 * @throws {AnvilError} when no binary exists for this platform.
 */
export function resolveAnvilBinary(): string {
  const fromEnv = process.env.ANVIL_PATH
  if (fromEnv) {
    if (!existsSync(fromEnv))
      throw new AnvilError('ANVIL_PATH does not exist', { details: { path: fromEnv } })
    return fromEnv
  }
  const platform = PLATFORMS[`${process.platform}-${process.arch}`]
  if (!platform)
    throw new AnvilError('No anvil build for this platform', {
      details: { platform: process.platform, arch: process.arch },
      hint: 'Install foundry and set ANVIL_PATH.',
    })
  const pkg = `@foundry-rs/anvil-${platform}`
  // Not a dependency of this package (ADR 0019): the project that starts anvil (tests, the
  // demo) installs it, so look from here (a workspace root) and from that project.
  for (const from of [import.meta.url, join(process.cwd(), 'package.json')]) {
    try {
      const require = createRequire(from)
      const binary = join(dirname(require.resolve(`${pkg}/package.json`)), 'bin', 'anvil')
      if (existsSync(binary)) return binary
    } catch {
      // try the next place, then the error below
    }
  }
  throw new AnvilError('The anvil binary is not installed', {
    details: { package: pkg },
    hint: `Add ${pkg} to the dev dependencies of the project that starts anvil, or set ANVIL_PATH.`,
  })
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}

async function rpc(url: string, method: string, params: unknown[] = []): Promise<unknown> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  })
  const body = (await res.json()) as { result?: unknown; error?: { message: string } }
  if (body.error)
    throw new AnvilError(`anvil rejected ${method}`, { details: { error: body.error.message } })
  return body.result
}

function waitExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => child.once('exit', () => resolve()))
}

async function launch(
  binary: string,
  options: StartAnvilOptions,
  cachePath: string,
): Promise<{ child: ChildProcess; port: number; url: string }> {
  const port = await freePort()
  const args = [
    // Each mined block's state goes to disk past anvil's in-memory window (~300 KB of JSON a
    // block: 4,096 mined blocks wrote 1.2 GB), and anvil never removes its default folder: on a
    // machine that ran the tests all day it held 72 GB. Ours is removed when anvil stops.
    '--cache-path',
    cachePath,
    '--host',
    '127.0.0.1',
    '--port',
    String(port),
    '--chain-id',
    String(options.chainId ?? 31337),
    '--accounts',
    String(options.accounts ?? 10),
    '--balance',
    String(options.balance ?? 10000),
    '--mnemonic',
    ANVIL_MNEMONIC,
    ...(options.blockTime === undefined ? [] : ['--block-time', String(options.blockTime)]),
    ...(options.args ?? []),
  ]
  const child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  let spawnError: Error | undefined
  child.on('error', (err) => {
    spawnError = err
  })
  child.stderr?.on('data', (d: Buffer) => {
    if (stderr.length < 4096) stderr += d.toString()
  })
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + (options.startTimeoutMs ?? 15_000)
  for (;;) {
    if (spawnError)
      throw new AnvilError('anvil could not be started', {
        details: { binary, error: spawnError.message },
        cause: spawnError,
      })
    if (child.exitCode !== null || child.signalCode !== null)
      throw new AnvilError('anvil exited during start-up', {
        details: { port, exitCode: child.exitCode, stderr: stderr.trim().slice(0, 500) },
      })
    try {
      await rpc(url, 'eth_chainId')
      return { child, port, url }
    } catch {
      if (Date.now() > deadline) {
        child.kill('SIGKILL')
        await waitExit(child)
        throw new AnvilError('anvil did not answer in time', { details: { port } })
      }
      await new Promise((r) => setTimeout(r, 50))
    }
  }
}

/**
 * Starts a fresh anvil on 127.0.0.1 with a free port and waits until it answers.
 *
 * @throws {AnvilError} when the binary is missing or anvil does not come up (three attempts,
 *   in case another process takes the port between probing and binding).
 */
export async function startAnvil(options: StartAnvilOptions = {}): Promise<Anvil> {
  const binary = options.binary ?? resolveAnvilBinary()
  const cachePath = mkdtempSync(join(tmpdir(), 'digicap-anvil-'))
  const removeCache = (): void => rmSync(cachePath, { recursive: true, force: true })
  let launched: Awaited<ReturnType<typeof launch>> | undefined
  let lastError: unknown
  for (let attempt = 0; attempt < 3 && !launched; attempt++) {
    try {
      launched = await launch(binary, options, cachePath)
    } catch (err) {
      lastError = err
    }
  }
  if (!launched) {
    removeCache()
    throw lastError
  }
  const { child, port, url } = launched
  const chainId = BigInt(options.chainId ?? 31337)
  const provider = createProvider(url, chainId)
  const root = HDNodeWallet.fromPhrase(ANVIL_MNEMONIC, undefined, "m/44'/60'/0'/0")
  const signers = Array.from(
    { length: options.accounts ?? 10 },
    (_, i) => new Wallet(root.deriveChild(i).privateKey, provider),
  )
  // If the test process exits without calling stop(), do not leave anvil running.
  const killOnExit = (): void => {
    child.kill('SIGKILL')
    removeCache()
  }
  process.once('exit', killOnExit)
  let stopped: Promise<void> | undefined
  return {
    rpcUrl: url,
    chainId,
    port,
    pid: child.pid ?? -1,
    cachePath,
    provider,
    accounts: signers.map((s) => s.address),
    signers,
    snapshot: async () => String(await provider.send('evm_snapshot', [])),
    revert: async (id) => {
      const ok = await provider.send('evm_revert', [id])
      if (ok !== true) throw new AnvilError('evm_revert failed', { details: { snapshot: id } })
    },
    increaseTime: async (seconds) => {
      await provider.send('evm_increaseTime', [seconds])
      await provider.send('evm_mine', [])
    },
    stop: () => {
      stopped ??= (async () => {
        process.removeListener('exit', killOnExit)
        provider.destroy()
        child.kill('SIGTERM')
        const timer = setTimeout(() => child.kill('SIGKILL'), 2000)
        await waitExit(child)
        clearTimeout(timer)
        removeCache()
      })()
      return stopped
    },
  }
}
