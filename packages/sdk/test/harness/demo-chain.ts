/**
 * The demo's chain, for tests: a real anvil with the `local` deployment (anvil account 0,
 * first transactions), a real swtpm, and a pi-node (init + serve, its real CLI in its own
 * process) whose keyguard releases keys over real libp2p on loopback. What the SDK calls
 * then do against it is what a third party's program does against `pnpm demo`'s chain.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { toHex } from '@digicap/capsule-core'
import { deployDigicap, LOCAL_NETWORK } from '@digicap/contracts'
import { type Anvil, startAnvil } from '@digicap/contracts/testing'
import { deriveOwnerIdentity, tpm2Sealer } from '@digicap/keyguard'
import { keyguardCard } from '@digicap/owner'
import { type Swtpm, startSwtpm } from '@digicap/tpm/testing'

const require = createRequire(import.meta.url)
export const PI_NODE = join(
  dirname(require.resolve('@digicap/pi-node/package.json')),
  'dist',
  'cli.js',
)

// biome-ignore lint/suspicious/noExplicitAny: the CLIs' JSON documents
type Doc = Record<string, any>

export interface DemoChain {
  readonly rpcUrl: string
  /** The pi-node's keyguard, to dial (`/ip4/127.0.0.1/tcp/…/p2p/…`). */
  readonly keyguard: string
  readonly owner: string
  /** The owner's account key (from the paper words `init` printed): what a laptop that seals holds. */
  readonly ownerKey: `0x${string}`
  /** The keyguard's public card (peer id, TPM wrapping key, recovery key) as JSON. */
  readonly card: string
  readonly piDataDir: string
  /** Env for more `pi-node` commands on this node. */
  readonly piEnv: Record<string, string>
  /** Gives `address` 100 ETH (anvil_setBalance). */
  fund(address: string): Promise<void>
  /** Runs `pi-node <args> --json` on this node; its last stdout line. */
  piNode(args: string[]): Promise<Doc>
  stop(): Promise<void>
}

async function rpc(url: string, method: string, params: unknown[]): Promise<unknown> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  })
  const body = (await res.json()) as { result?: unknown; error?: { message: string } }
  if (body.error) throw new Error(`${method}: ${body.error.message}`)
  return body.result
}

function run(
  args: string[],
  env: Record<string, string>,
): { child: ChildProcess; done: Promise<{ code: number | null; out: string; err: string }> } {
  const child = spawn(
    process.execPath,
    ['--disable-warning=ExperimentalWarning', PI_NODE, ...args, '--json'],
    {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? tmpdir(), ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  let out = ''
  let err = ''
  child.stdout?.on('data', (d) => {
    out += d
  })
  child.stderr?.on('data', (d) => {
    err += d
  })
  const done = new Promise<{ code: number | null; out: string; err: string }>((resolve) =>
    child.once('close', (code) => resolve({ code, out, err })),
  )
  return { child, done }
}

function lastDoc(out: string, what: string, err: string): Doc {
  const line = out.trim().split('\n').at(-1) ?? ''
  try {
    return JSON.parse(line) as Doc
  } catch {
    throw new Error(`${what} printed no JSON:\n${err.slice(-2000)}`)
  }
}

export async function startDemoChain(): Promise<DemoChain> {
  const tmp = await mkdtemp(join(tmpdir(), 'digicap-sdk-chain-'))
  let anvil: Anvil | undefined
  let tpm: Swtpm | undefined
  let serve: ChildProcess | undefined
  const stop = async () => {
    if (serve && serve.exitCode === null) {
      const closed = new Promise((r) => serve?.once('close', r))
      serve.kill('SIGTERM')
      await closed
    }
    await Promise.all([anvil?.stop(), tpm?.stop()])
    await rm(tmp, { recursive: true, force: true })
  }
  try {
    ;[anvil, tpm] = await Promise.all([startAnvil({ accounts: 2 }), startSwtpm()])
    const deployed = await deployDigicap(anvil.signers[0] as NonNullable<Anvil['signers'][0]>)
    if (deployed.accessController !== LOCAL_NETWORK.addresses.accessController) {
      throw new Error('the local deployment moved: LOCAL_NETWORK is out of date')
    }
    const rpcUrl = anvil.rpcUrl
    const piDataDir = join(tmp, 'pi-node')
    const piEnv = { DIGICAP_DATA_DIR: piDataDir, DIGICAP_RPC_URL: rpcUrl }
    const piNode = async (args: string[]): Promise<Doc> => {
      const r = await run(args, piEnv).done
      const doc = lastDoc(r.out, `pi-node ${args[0]}`, r.err)
      if (r.code !== 0 || doc.ok === false)
        throw new Error(`pi-node ${args[0]} failed (exit ${r.code}):\n${r.err.slice(-2000)}`)
      return doc
    }
    const a = LOCAL_NETWORK.addresses
    const init = await piNode([
      'init',
      '--tcti',
      tpm.tcti,
      '--capsule-registry',
      a.capsuleRegistry,
      '--node-registry',
      a.nodeRegistry,
      '--access-controller',
      a.accessController,
      '--listen',
      '/ip4/127.0.0.1/tcp/0',
      '--show-mnemonic-in-json',
    ])
    const identity = await deriveOwnerIdentity(init.mnemonic)
    if (identity.address !== init.owner.address) throw new Error('the words do not give the owner')
    // The TPM key's public half, read while no daemon uses the TPM (`pi-node status` shows it too).
    const wrappingKey = await tpm2Sealer({ tcti: tpm.tcti }).publicKey()
    const fund = async (address: string) => {
      await rpc(rpcUrl, 'anvil_setBalance', [address, '0x56bc75e2d63100000'])
    }
    // Not --deploy: the owner and its keyguard operator get dev ETH here; `serve` approves the operator.
    await fund(init.owner.address)
    if (init.operator?.address) await fund(init.operator.address)
    const daemon = run(['serve', '--status-interval-ms', '500'], piEnv)
    serve = daemon.child
    let out = ''
    daemon.child.stdout?.on('data', (d) => {
      out += d
    })
    const ready = await new Promise<Doc>((resolve, reject) => {
      const t = setInterval(() => {
        if (out.includes('\n')) {
          clearInterval(t)
          resolve(JSON.parse(out.split('\n')[0] as string) as Doc)
        }
      }, 50)
      void daemon.done.then((r) => {
        clearInterval(t)
        reject(new Error(`pi-node serve exited (${r.code}):\n${r.err.slice(-2000)}`))
      })
    })
    if (ready.ok === false) throw new Error('pi-node serve failed')
    const keyguard = (ready.multiaddrs as string[])[0] as string
    const card = JSON.stringify(
      await keyguardCard({
        peerId: ready.peerId,
        wrapper: { publicKey: async () => wrappingKey },
        recoveryPublicKey: identity.recoveryKeyPair.publicKey,
      }),
    )
    return {
      rpcUrl,
      keyguard,
      owner: init.owner.address,
      ownerKey: toHex(identity.ethereumPrivateKey),
      card,
      piDataDir,
      piEnv,
      fund,
      piNode,
      stop,
    }
  } catch (err) {
    await stop()
    throw err
  }
}
