/**
 * One keyguard world for a test file, from real parts: anvil with Digicap and an environment
 * policy, the keyguard's libp2p node, an executor side (registered), capsules whose keys are in
 * the store, optionally a swtpm behind a tpm2 sealer, and the keyguard itself, started. Build it
 * once in `beforeAll`; `stop()` in `afterAll` kills swtpm and anvil and removes the temp dirs
 * whatever failed before (see ./teardown.ts), and a set-up that fails half-way cleans up too.
 *
 * @example
 * ```ts
 * let w: KeyguardWorld
 * beforeAll(async () => {
 *   w = await keyguardWorld({ keyguard: { fastPath: { enabled: true } } })
 * }, 60_000)
 * afterAll(() => w?.stop())
 * ```
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AccessRequest, AccessResponse, ConnectionGuard } from '@digicap/protocol'
import { fastPathProtocol, request } from '@digicap/protocol'
import type { ConnectionGater, Libp2p } from '@libp2p/interface'
import { randomBytes } from 'ethers'
import {
  type ChainClient,
  createKeyguard,
  type Keyguard,
  type KeyguardEvent,
  type KeyguardInit,
  type Logger,
  type Sealer,
  tpm2Sealer,
} from '../../src/index.ts'
import { type Swtpm, startSwtpm } from '../../src/testing.ts'
import { type SignedRequestOptions, signedRequest } from './access-request.ts'
import { settingUp, type Teardown } from './teardown.ts'
import {
  type Chain,
  chainClientFor,
  createNode,
  type ExecutorSide,
  executorSide,
  type KeyguardParts,
  keyguardParts,
  quietLogger,
  registerCapsule,
  registerExecutor,
  setupChain,
  storeKey,
} from './world.ts'

export interface KeyguardWorldOptions {
  /** The AccessController's `auditWindow`, seconds (default the deployment's, 600). */
  auditWindow?: number
  /** Start a swtpm (`world.swtpm`); the default sealer is then a tpm2 sealer on it. */
  swtpm?: boolean
  /**
   * The keyguard's sealer, given the swtpm and the data dir, which exists already (default: tpm2
   * on the swtpm, else software).
   */
  sealer?: (swtpm: Swtpm | undefined, dataDir: string) => Sealer
  /** The keyguard node's connection gater (a connection guard's `gater`). */
  connectionGater?: ConnectionGater
  /**
   * Executor sides (default 1); `world.exec` is the first, registered as `chain.executor`. With
   * 0, the file makes its own (`world.exec` then throws).
   */
  executors?: number
  /** Register `chain.executor` with the first executor side's node (default true). */
  registerExecutor?: boolean
  /** Plain libp2p nodes (no registration) that know the keyguard's address. */
  strangers?: number
  /** Capsules on the keyguard's node under the environment policy, keys stored (default 1). */
  capsules?: number
  /** The data key of every capsule (default: a fresh one each). */
  dataKey?: Uint8Array
  /** Runs after the parts exist and before the keyguard is built (extra capsules, deposits). */
  prepare?: (w: KeyguardWorld) => Promise<void>
  /**
   * The keyguard's init over `{ dataDir, confirmations: 0, startBlock: deployBlock }`; `false`
   * builds none (the file builds its own servers on `world.parts`).
   */
  keyguard?: Partial<KeyguardInit> | false
  /** Start the keyguard (default true). */
  start?: boolean
  /** Wraps the chain client the keyguard reads through (to count lookups, to fail writes). */
  chainClient?: (real: ChainClient) => ChainClient
  guard?: ConnectionGuard
  logger?: Logger
  /** Keyguard event types recorded into `world.events` from the start. */
  events?: readonly string[]
  /** The keyguard's node learns the executor's addresses (the chain path dials it). */
  keyguardDialsExecutor?: boolean
}

export interface KeyguardWorld {
  chain: Chain
  kgNode: Libp2p
  /** The first executor side; `chain.executor` when registered. */
  readonly exec: ExecutorSide
  executors: ExecutorSide[]
  strangers: Libp2p[]
  parts: KeyguardParts
  swtpm: Swtpm | undefined
  /** Capsule ids in registration order; `capsuleId` is the first. */
  capsules: string[]
  capsuleId: string
  dataKeys: Map<string, Uint8Array>
  /** The keyguard (a world built with `keyguard: false` throws here). */
  readonly keyguard: Keyguard
  events: KeyguardEvent[]
  /** A fast-path request of `chain.executor` (or `o.signer`) for `capsuleId` (default the first). */
  signed(o?: Partial<SignedRequestOptions>): AccessRequest
  /** Sends `req` from `from` (default the executor's node) to the keyguard's node. */
  ask(req: AccessRequest, from?: Libp2p, options?: { timeout?: number }): Promise<AccessResponse>
  /** Registers more to stop with the world (extra nodes, proxies, temp dirs). */
  defer(name: string, stop: () => unknown): void
  stop(): Promise<void>
}

/**
 * Waits for every part (so that each one started is registered for tear-down), then fails with
 * the first error, if any: `Promise.all` would fail early and leak the parts still starting.
 */
async function allStarted<T extends readonly unknown[] | []>(
  parts: T,
): Promise<{ -readonly [K in keyof T]: Awaited<T[K]> }> {
  const settled = await Promise.allSettled(parts)
  for (const s of settled) if (s.status === 'rejected') throw s.reason
  return settled.map((s) => (s as PromiseFulfilledResult<unknown>).value) as {
    -readonly [K in keyof T]: Awaited<T[K]>
  }
}

/** Starts `part`, registering its stop the moment it exists. */
async function tracked<T>(
  t: Teardown,
  name: string,
  part: Promise<T>,
  stop: (p: T) => unknown,
): Promise<T> {
  const p = await part
  t.add(name, () => stop(p))
  return p
}

export function keyguardWorld(options: KeyguardWorldOptions = {}): Promise<KeyguardWorld> {
  return settingUp(async (t) => {
    const nodes = (n: number, name: string, make: () => Promise<Libp2p>) =>
      Array.from({ length: n }, (_, i) => tracked(t, `${name} ${i}`, make(), (node) => node.stop()))
    const [chain, swtpm, kgNode, executors, strangers] = await allStarted([
      tracked(
        t,
        'anvil',
        setupChain(options.auditWindow === undefined ? {} : { auditWindow: options.auditWindow }),
        (c) => c.anvil.stop(),
      ),
      options.swtpm
        ? tracked(t, 'swtpm', startSwtpm(), (s) => s.stop()).then((s) => {
            t.killOnExit(s.pid)
            return s
          })
        : Promise.resolve(undefined),
      tracked(
        t,
        'keyguard node',
        createNode(
          options.connectionGater === undefined ? {} : { connectionGater: options.connectionGater },
        ),
        (n) => n.stop(),
      ),
      allStarted(
        Array.from({ length: options.executors ?? 1 }, (_, i) =>
          tracked(t, `executor ${i}`, executorSide(), (s) => s.stop()),
        ),
      ),
      allStarted(nodes(options.strangers ?? 0, 'stranger', () => createNode())),
    ])
    const first = executors[0]
    const exec = (): ExecutorSide => {
      if (first === undefined) throw new Error('this world was built with executors: 0')
      return first
    }
    if (first !== undefined && (options.registerExecutor ?? true)) {
      await registerExecutor(chain, chain.executor, first.node)
    }
    const dir = await tracked(t, 'data dir', mkdtemp(join(tmpdir(), 'kg-runtime-')), (d) =>
      rm(d, { recursive: true, force: true }),
    )
    const sealer =
      options.sealer?.(swtpm, dir) ??
      (swtpm === undefined
        ? undefined
        : tpm2Sealer({ tcti: swtpm.tcti, createIfMissing: true, logger: quietLogger }))
    const parts = await keyguardParts(dir, sealer)
    let keyguard: Keyguard | undefined
    const world: KeyguardWorld = {
      chain,
      kgNode,
      get exec() {
        return exec()
      },
      executors,
      strangers,
      parts,
      swtpm,
      capsules: [],
      capsuleId: '',
      dataKeys: new Map(),
      get keyguard(): Keyguard {
        if (keyguard === undefined) throw new Error('this world was built with keyguard: false')
        return keyguard
      },
      events: [],
      signed: (o = {}) =>
        signedRequest(chain, { capsuleId: world.capsuleId, side: o.side ?? exec(), ...o }),
      ask: (req, from = exec().node, o = {}) =>
        request(from, kgNode.peerId, fastPathProtocol, req, o),
      defer: (name, stop) => t.add(name, stop),
      stop: () => t.run(),
    }
    for (let i = 0; i < (options.capsules ?? 1); i++) {
      const id = await registerCapsule(chain, kgNode)
      const key = options.dataKey ?? randomBytes(32)
      await storeKey(parts, id, key)
      world.capsules.push(id)
      world.dataKeys.set(id, key)
    }
    world.capsuleId = world.capsules[0] ?? ''
    await options.prepare?.(world)
    if (options.keyguard !== false) {
      const real = chainClientFor(chain)
      const kg = createKeyguard({
        dataDir: parts.dir,
        confirmations: 0,
        startBlock: chain.addresses.deployBlock,
        ...options.keyguard,
      })({
        sealer: parts.sealer,
        keyStore: parts.keyStore,
        journal: parts.journal,
        chain: options.chainClient?.(real) ?? real,
        libp2p: kgNode,
        ...(options.guard === undefined ? {} : { guard: options.guard }),
        logger: options.logger ?? quietLogger,
      })
      for (const type of options.events ?? []) {
        kg.events.addEventListener(type, (e) =>
          world.events.push((e as CustomEvent<KeyguardEvent>).detail),
        )
      }
      // Registered before it starts: stop() of a keyguard never started is a no-op.
      t.add('keyguard', () => kg.stop())
      keyguard = kg
      if (options.start ?? true) await kg.start()
    }
    for (const node of [...executors.map((s) => s.node), ...strangers]) {
      await node.peerStore.merge(kgNode.peerId, { multiaddrs: kgNode.getMultiaddrs() })
    }
    if (options.keyguardDialsExecutor) {
      for (const side of executors) {
        await kgNode.peerStore.merge(side.node.peerId, { multiaddrs: side.node.getMultiaddrs() })
      }
    }
    return world
  })
}
