/**
 * `ethersChainClient`: the {@link ChainClient} over ethers v6 JSON-RPC providers.
 *
 * With several providers every read goes to all of them through `createRpcQuorum` and counts
 * only an answer that at least `quorum` of them returned identically (logs are counted one by
 * one), so a single lying or broken RPC can neither forge a grant nor hide the chain id.
 * Contract reads are pinned to one block a quorum agrees on (by hash), so honest RPCs a block
 * apart still agree.
 */
import { ChainReadError } from '@digicap/capsule-core/light'
import {
  accessControllerAbi,
  attestationHubAbi,
  capsuleRegistryAbi,
  createRpcQuorum,
  type DisagreementEvent,
  decodeRevert,
  nodeRegistryAbi,
  QuorumError,
} from '@digicap/contracts'
import {
  Contract,
  getAddress,
  getBytes,
  hexlify,
  Interface,
  id,
  type JsonRpcApiProvider,
  type Log,
  NonceManager,
  type Signer,
  toBeHex,
  ZeroAddress,
  ZeroHash,
  zeroPadValue,
} from 'ethers'
import type {
  AuditShortfall,
  BlockRef,
  CapsuleRecord,
  ChainClient,
  ChainGrant,
  CheckAccessArgs,
  FastPathAuditOutcome,
  FastPathRecord,
  GrantLog,
  HubJob,
  NodeRegistrationLog,
} from './chain-client.ts'

export interface EthersChainClientInit {
  /** One provider, or several for a quorum. Use `createProvider` from `@digicap/contracts`. */
  providers: readonly JsonRpcApiProvider[]
  /** How many providers must agree. Default: 1 for one provider, else a majority. */
  quorum?: number
  /** How long one pinned block serves reads, ms (default 1000; see `createRpcQuorum`). */
  pinMaxAgeMs?: number
  /** Told when a quorum answered but some RPCs dissented: log it, one of them lies or lags. */
  onDisagreement?: (event: DisagreementEvent) => void
  /**
   * The last blocks of a `grantLogs` / `nodeRegistrations` range that are read one by one by
   * block hash (EIP-234)
   * rather than by range: an RPC whose log index lags answers a range with `[]` for blocks it has
   * not indexed, but a hash it does not have with an error (ADR 0085). Default 32.
   */
  tipBlocks?: number
  /**
   * Sends `recordFastPathGrant`: the keyguard operator account the owner approved with
   * `CapsuleRegistry.setOperator` (see `deriveOwnerIdentity`), never the owner's own account,
   * whose other transactions would race these for a nonce. Wrapped in an ethers
   * `NonceManager` (unless it is one) so one process never reuses a nonce.
   */
  signer?: Signer
  /**
   * `attestationHub`: the AttestationHub the chain path's `attested()` gate reads the
   * committee's verdicts from (`hubJob`; ADR 0033). Without it the client has no `hubJob`.
   */
  addresses: { accessController: string; nodeRegistry: string; attestationHub?: string }
  chainId: bigint | number
}

const topicOf = (iface: Interface, name: string): string => {
  const event = iface.getEvent(name)
  if (event === null) throw new TypeError(`${name} missing from the ABI`)
  return event.topicHash
}

/**
 * The contracts' interfaces, built on first use: built at module load, they would load ethers
 * into every process importing this package for other parts (an executor's one-shot run, whose
 * bundle leaves ethers out until a transaction is sent, ADR 0052).
 */
function buildAbi() {
  const controller = new Interface(accessControllerAbi as never)
  const registry = new Interface(nodeRegistryAbi as never)
  return {
    controller,
    accessGrantedTopic: topicOf(controller, 'AccessGranted'),
    hub: new Interface(attestationHubAbi as never),
    capsuleRegistry: new Interface(capsuleRegistryAbi as never),
    /** `attestationRequired()`: generated policies with `attested()` have it (contracts README). */
    attestationRequired: id('attestationRequired()').slice(0, 10),
    registry,
    nodeTopics: [topicOf(registry, 'NodeRegistered'), topicOf(registry, 'NodeUpdated')],
  }
}
let built: ReturnType<typeof buildAbi> | undefined
const abi = () => {
  built ??= buildAbi()
  return built
}

const lower = (hex: string): string => hex.toLowerCase()

/** AttestationHub.Status and .Before, by their index. */
const HUB_STATUS: readonly HubJob['status'][] = [
  'none',
  'open',
  'seated',
  'certified',
  'settled',
  'timed-out',
]
const HUB_BEFORE: readonly HubJob['before'][] = ['none', 'pass', 'fail']

function decodeHubJob(data: string): HubJob {
  const job = abi().hub.decodeFunctionResult('jobs', data)
  const status = HUB_STATUS[Number(job.status)]
  const before = HUB_BEFORE[Number(job.before)]
  // An answer outside the enums is no answer: fail closed (the quorum counts it as a failure).
  if (status === undefined || before === undefined) throw new TypeError('Unknown job state')
  return { status, before }
}

function parseGrantLog(log: Log): GrantLog | undefined {
  let parsed: ReturnType<Interface['parseLog']>
  try {
    parsed = abi().controller.parseLog({ topics: [...log.topics], data: log.data })
  } catch {
    return undefined
  }
  if (parsed === null || parsed.name !== 'AccessGranted') return undefined
  const a = parsed.args
  return {
    address: getAddress(log.address),
    grantId: lower(String(a[0])),
    capsuleId: lower(String(a[1])),
    executor: getAddress(String(a[2])),
    ephemeralKey: lower(String(a[3])),
    measurement: lower(String(a[4])),
    expiresAt: BigInt(a[5]),
    fastPath: Boolean(a[6]),
    blockNumber: log.blockNumber,
    blockHash: lower(log.blockHash),
    transactionHash: lower(log.transactionHash),
    logIndex: log.index,
  }
}

const logKey = (l: GrantLog): string => JSON.stringify({ ...l, expiresAt: l.expiresAt.toString() })

/** A `NodeRegistered` / `NodeUpdated` log, keyed with its block hash for the quorum count. */
interface KeyedRegistration extends NodeRegistrationLog {
  blockHash: string
}

function parseRegistrationLog(log: Log): KeyedRegistration | undefined {
  let parsed: ReturnType<Interface['parseLog']>
  try {
    parsed = abi().registry.parseLog({ topics: [...log.topics], data: log.data })
  } catch {
    return undefined
  }
  if (parsed === null || (parsed.name !== 'NodeRegistered' && parsed.name !== 'NodeUpdated')) {
    return undefined
  }
  const a = parsed.args
  return {
    node: getAddress(String(a[0])),
    roles: Number(a[1]),
    peerId: getBytes(String(a[2])),
    blockNumber: log.blockNumber,
    blockHash: lower(log.blockHash),
    logIndex: log.index,
  }
}

const registrationKey = (l: KeyedRegistration): string =>
  JSON.stringify({ ...l, peerId: hexlify(l.peerId) })

/** `AuditShortfall` of `accessController` in a receipt's logs (of `grantId`, if given), if any. */
function parseShortfall(
  logs: readonly Log[],
  accessController: string,
  grantId?: string,
): AuditShortfall | undefined {
  for (const log of logs) {
    if (getAddress(log.address) !== accessController) continue
    let parsed: ReturnType<Interface['parseLog']>
    try {
      parsed = abi().controller.parseLog({ topics: [...log.topics], data: log.data })
    } catch {
      continue
    }
    if (parsed?.name !== 'AuditShortfall') continue
    if (grantId !== undefined && lower(String(parsed.args[0])) !== grantId) continue
    return { fromStake: BigInt(parsed.args[2]), uncovered: BigInt(parsed.args[3]) }
  }
  return undefined
}

/** `FastPathAuditFailed` logs of a batch: item index → the item's revert (decoded if known). */
function parseAuditFailures(
  logs: readonly Log[],
  accessController: string,
): Map<number, { errorName?: string; reason: string }> {
  const out = new Map<number, { errorName?: string; reason: string }>()
  for (const log of logs) {
    if (getAddress(log.address) !== accessController) continue
    let parsed: ReturnType<Interface['parseLog']>
    try {
      parsed = abi().controller.parseLog({ topics: [...log.topics], data: log.data })
    } catch {
      continue
    }
    if (parsed?.name !== 'FastPathAuditFailed') continue
    const reason = lower(String(parsed.args[4]))
    let errorName: string | undefined
    try {
      errorName = abi().controller.parseError(reason)?.name
    } catch {
      errorName = undefined
    }
    out.set(Number(parsed.args[0]), { ...(errorName === undefined ? {} : { errorName }), reason })
  }
  return out
}

/**
 * Builds a {@link ChainClient} over ethers providers.
 *
 * @throws {InvalidArgumentError} for no providers or a quorum outside 1..providers.
 * @example
 * ```ts
 * const chain = ethersChainClient({
 *   providers: urls.map((u) => createProvider(u, 1n)), quorum: 2,
 *   signer: operatorWallet, addresses, chainId: 1n,
 * })
 * ```
 */
export function ethersChainClient(init: EthersChainClientInit): ChainClient {
  const rpcs = createRpcQuorum({
    providers: init.providers,
    ...(init.quorum === undefined ? {} : { quorum: init.quorum }),
    ...(init.pinMaxAgeMs === undefined ? {} : { pinMaxAgeMs: init.pinMaxAgeMs }),
    ...(init.onDisagreement === undefined ? {} : { onDisagreement: init.onDisagreement }),
  })
  const { providers, quorum } = rpcs
  const tipBlocks = Math.max(1, init.tipBlocks ?? 32)
  const blockRef = (number: number) =>
    rpcs.agree('block hash', async (p): Promise<BlockRef | undefined> => {
      const b = await p.getBlock(number)
      return b?.hash ? { number: b.number, hash: lower(b.hash) } : undefined
    })
  const accessController = getAddress(init.addresses.accessController)
  const nodeRegistry = getAddress(init.addresses.nodeRegistry)
  const chainId = BigInt(init.chainId)
  const controllers = providers.map(
    (p) => new Contract(accessController, accessControllerAbi as never, p),
  )
  const registries = providers.map((p) => new Contract(nodeRegistry, nodeRegistryAbi as never, p))
  const signer =
    init.signer === undefined || init.signer instanceof NonceManager
      ? init.signer
      : new NonceManager(init.signer)

  async function kthHighest(
    operation: string,
    read: (p: JsonRpcApiProvider) => Promise<bigint>,
  ): Promise<bigint> {
    const values = (await Promise.allSettled(providers.map(read)))
      .flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []))
      .sort((x, y) => (x > y ? -1 : x < y ? 1 : 0))
    const v = values[quorum - 1]
    if (v === undefined) {
      throw new QuorumError(`Fewer than ${quorum} RPCs answered ${operation}`, {
        details: { operation, quorum, answered: values.length },
      })
    }
    return v
  }

  const controller = (i: number) => controllers[i] as Contract

  /**
   * `eth_getLogs` on every provider; a log counts once `quorum` providers returned it
   * identically (`key`). Sorted in chain order.
   */
  async function quorumLogs<T extends { blockNumber: number; logIndex: number }>(
    filter: { address: string; topics: unknown[] } & (
      | { fromBlock: number; toBlock: number }
      | { blockHash: string }
    ),
    parse: (log: Log) => T | undefined,
    key: (log: T) => string,
  ): Promise<T[]> {
    const results = await Promise.allSettled(providers.map((p) => p.getLogs(filter as never)))
    const counts = new Map<string, { log: T; n: number }>()
    let answered = 0
    for (const r of results) {
      if (r.status !== 'fulfilled') continue
      answered++
      const seen = new Set<string>()
      for (const raw of r.value) {
        const log = parse(raw)
        if (log === undefined) continue
        const k = key(log)
        if (seen.has(k)) continue
        seen.add(k)
        const c = counts.get(k) ?? { log, n: 0 }
        c.n++
        counts.set(k, c)
      }
    }
    if (answered < quorum) {
      const err = results.find((r) => r.status === 'rejected')
      throw new QuorumError(`Fewer than ${quorum} RPCs answered eth_getLogs`, {
        details: { operation: 'eth_getLogs', quorum, answered },
        cause: err?.status === 'rejected' ? err.reason : undefined,
      })
    }
    return [...counts.values()]
      .filter((c) => c.n >= quorum)
      .map((c) => c.log)
      .sort((a, b) => a.blockNumber - b.blockNumber || a.logIndex - b.logIndex)
  }

  /**
   * A log read over `fromBlock..toBlock`: the range's last `tipBlocks` one block each by hash (a
   * lagging log index answers a range it has not indexed with `[]`, a block hash it does not
   * have with an error; ADR 0085), the blocks below by range.
   */
  async function logsUpToTip<
    T extends { blockNumber: number; logIndex: number; blockHash: string },
  >(
    base: { address: string; topics: unknown[] },
    fromBlock: number,
    toBlock: number,
    parse: (log: Log) => T | undefined,
    key: (log: T) => string,
  ): Promise<T[]> {
    const tipFrom = Math.max(fromBlock, toBlock - tipBlocks + 1)
    const logs =
      tipFrom > fromBlock
        ? await quorumLogs({ ...base, fromBlock, toBlock: tipFrom - 1 }, parse, key)
        : []
    for (let n = tipFrom; n <= toBlock; n++) {
      const ref = await blockRef(n)
      if (ref === undefined)
        throw new ChainReadError('A block of the range is not on chain', {
          details: { block: n },
          hint: 'A reorg shortened the chain meanwhile: read the range again.',
        })
      const at = await quorumLogs({ ...base, blockHash: ref.hash }, parse, key)
      logs.push(...at.filter((l) => l.blockHash === ref.hash))
    }
    return logs
  }
  const registry = (i: number) => registries[i] as Contract
  // The AccessController's CapsuleRegistry is immutable: read once (through the quorum).
  let capsuleRegistry: Promise<string> | undefined
  const capsuleRegistryAddress = (): Promise<string> => {
    if (capsuleRegistry === undefined) {
      const read = rpcs.read('capsuleRegistry', async ({ index, blockTag }) =>
        getAddress(String(await controller(index).getFunction('capsuleRegistry')({ blockTag }))),
      )
      read.catch(() => {
        if (capsuleRegistry === read) capsuleRegistry = undefined
      })
      capsuleRegistry = read
    }
    return capsuleRegistry
  }

  return {
    chainId,
    accessController,

    remoteChainId: () =>
      rpcs.agree('eth_chainId', async (p) => BigInt(await p.send('eth_chainId', []))),

    // Providers may be a block apart: the k-th highest answer is one a quorum reached.
    blockNumber: () => rpcs.head(),

    now: () =>
      kthHighest('latest block time', async (p) =>
        BigInt((await p.getBlock('latest'))?.timestamp ?? 0),
      ),

    taggedBlock: async (tag) =>
      Number(
        await kthHighest(`${tag} block`, async (p) => {
          const b = (await p.send('eth_getBlockByNumber', [tag, false])) as {
            number?: unknown
          } | null
          if (typeof b?.number !== 'string') throw new Error(`no ${tag} block`)
          return BigInt(b.number)
        }),
      ),

    block: blockRef,

    async grantLogs(fromBlock, toBlock, capsuleIds) {
      if (capsuleIds.length === 0 || toBlock < fromBlock) return []
      const logs = await logsUpToTip(
        {
          address: accessController,
          topics: [abi().accessGrantedTopic, null, capsuleIds.map((c) => zeroPadValue(c, 32))],
        },
        fromBlock,
        toBlock,
        parseGrantLog,
        logKey,
      )
      // The releaser reads these grants next: pin reads at their block once a quorum has it.
      const last = logs.at(-1)
      if (last !== undefined) rpcs.notice(last.blockNumber)
      return logs
    },

    async nodeRegistrations(fromBlock, toBlock) {
      if (toBlock < fromBlock) return []
      // Near the head by hash too: a registration a lagging index withheld would otherwise be
      // skipped for good (the feed's cursor moves on), leaving a re-registered executor's old
      // peer id in the directory.
      const logs = await logsUpToTip(
        { address: nodeRegistry, topics: [abi().nodeTopics] },
        fromBlock,
        toBlock,
        parseRegistrationLog,
        registrationKey,
      )
      return logs.map(({ blockHash: _hash, ...log }) => log)
    },

    getGrant: (grantId) =>
      rpcs.read('getGrant', async ({ index, blockTag }): Promise<ChainGrant | undefined> => {
        try {
          const g = await controller(index).getFunction('getGrant')(grantId, { blockTag })
          return {
            grantId: lower(grantId),
            executor: getAddress(String(g.executor)),
            runIndex: BigInt(g.runIndex),
            expiresAt: BigInt(g.expiresAt),
            fastPath: Boolean(g.fastPath),
            capsuleId: lower(String(g.capsuleId)),
            ephemeralKey: lower(String(g.ephemeralKey)),
          }
        } catch (err) {
          const decoded = decodeRevert(err) as { errorName?: string }
          if (decoded?.errorName === 'GrantNotFound') return undefined
          throw decoded
        }
      }),

    checkAccess: (a: CheckAccessArgs) =>
      rpcs.read('checkAccess', async ({ index, blockTag }) => {
        const [allowed, reason] = await controller(index).getFunction('checkAccess')(
          a.capsuleId,
          a.executor,
          a.ephemeralKey,
          a.measurement,
          a.feePaid,
          a.fastPath,
          a.jobParams,
          { blockTag },
        )
        return { allowed: Boolean(allowed), reason: Number(reason) }
      }),

    isActive: (node, role) =>
      rpcs.read('isActive', async ({ index, blockTag }) =>
        Boolean(await registry(index).getFunction('isActive')(node, role, { blockTag })),
      ),

    nodePeerId: (node) =>
      rpcs.read(
        'getNode',
        async ({ index, blockTag }): Promise<Uint8Array | undefined> => {
          try {
            const n = await registry(index).getFunction('getNode')(node, { blockTag })
            const hex = String(n.peerId)
            return hex === '0x' ? undefined : Uint8Array.from(Buffer.from(hex.slice(2), 'hex'))
          } catch (err) {
            const decoded = decodeRevert(err) as { errorName?: string }
            if (decoded?.errorName === 'NotRegistered') return undefined
            throw decoded
          }
        },
        (v) => (v === undefined ? '-' : Buffer.from(v).toString('hex')),
      ),

    async capsuleRecord(capsuleId) {
      const capsules = await capsuleRegistryAddress()
      const registryAbi = abi().capsuleRegistry
      const call = async (provider: JsonRpcApiProvider, blockTag: string | number, fn: string) =>
        registryAbi.decodeFunctionResult(
          fn,
          await provider.call({
            to: capsules,
            data: registryAbi.encodeFunctionData(fn, [capsuleId]),
            blockTag,
          }),
        )
      return rpcs.read(
        'capsuleRecord',
        async ({ provider, blockTag }): Promise<CapsuleRecord> => {
          const [owner, info] = await Promise.all([
            call(provider, blockTag, 'ownerOf'),
            call(provider, blockTag, 'accessInfo'),
          ])
          return {
            owner: getAddress(String(owner[0])),
            policy: getAddress(String(info[0])),
            revoked: Boolean(info[1]),
          }
        },
        (r) => `${r.owner}:${r.policy}:${r.revoked}`,
      )
    },

    async attestationRequired(capsuleId) {
      const capsules = await capsuleRegistryAddress()
      return rpcs.read('attestationRequired', async ({ provider, blockTag }) => {
        const info = abi().capsuleRegistry.decodeFunctionResult(
          'accessInfo',
          await provider.call({
            to: capsules,
            data: abi().capsuleRegistry.encodeFunctionData('accessInfo', [capsuleId]),
            blockTag,
          }),
        )
        const policy = getAddress(String(info[0]))
        if (policy === ZeroAddress) return false
        let answer: string
        try {
          answer = await provider.call({ to: policy, data: abi().attestationRequired, blockTag })
        } catch (err) {
          // A policy without `attested()` has no such function: the call reverts.
          if ((err as { code?: string }).code === 'CALL_EXCEPTION') return false
          throw err
        }
        // Only an ABI `false` says "not required"; anything else but a revert fails closed.
        return answer.toLowerCase() !== ZeroHash
      })
    },

    attestationKeyHash: (node) =>
      rpcs.read('attestationKeyHash', async ({ index, blockTag }): Promise<string> => {
        try {
          const n = await registry(index).getFunction('getNode')(node, { blockTag })
          return lower(String(n.attestationKeyHash))
        } catch (err) {
          const decoded = decodeRevert(err) as { errorName?: string }
          if (decoded?.errorName === 'NotRegistered') return ZeroHash
          throw decoded
        }
      }),

    nonceUsed: (executor, capsuleId, nonce) =>
      rpcs.read('nonceUsed', async ({ index, blockTag }) =>
        Boolean(
          await controller(index).getFunction('nonceUsed')(executor, capsuleId, nonce, {
            blockTag,
          }),
        ),
      ),

    runCount: (capsuleId) =>
      rpcs.read('runCount', async ({ index, blockTag }) =>
        BigInt(await controller(index).getFunction('runCount')(capsuleId, { blockTag })),
      ),

    overrunRunCount: (capsuleId) =>
      rpcs.read('overrunRunCount', async ({ index, blockTag }) =>
        BigInt(await controller(index).getFunction('overrunRunCount')(capsuleId, { blockTag })),
      ),

    ...(init.addresses.attestationHub === undefined
      ? {}
      : { hubJob: hubJobReader(getAddress(init.addresses.attestationHub)) }),

    blockTime: (number) =>
      kthHighest(`block ${number} time`, async (p) => {
        const b = await p.getBlock(number)
        if (b === null) throw new Error(`block ${number} not found`)
        return BigInt(b.timestamp)
      }),

    grantWindow: () =>
      rpcs.read('grantWindow', async ({ index, blockTag }) =>
        BigInt(await controller(index).getFunction('grantWindow')({ blockTag })),
      ),

    auditWindow: () =>
      rpcs.read('auditWindow', async ({ index, blockTag }) =>
        BigInt(await controller(index).getFunction('auditWindow')({ blockTag })),
      ),

    resyncNonce() {
      if (signer instanceof NonceManager) signer.reset()
    },

    async recordFastPathGrants(items) {
      const receipt = await sendAudit('recordFastPathGrants', [
        items.map((i) => ({ ...i.req, nonce: toBeHex(i.req.nonce, 32) })),
        items.map((i) => i.jobParams),
        items.map((i) => i.signature),
      ])
      const logs = receipt.logs as Log[]
      const granted = logs
        .map((l) => parseGrantLog(l))
        .filter((l): l is GrantLog => l !== undefined && l.address === accessController)
      const skipped = parseAuditFailures(logs, accessController)
      let next = 0
      const outcomes = items.map((item, index): FastPathAuditOutcome => {
        const failure = skipped.get(index)
        if (failure !== undefined) return { recorded: false, ...failure }
        const log = granted[next++]
        if (
          log === undefined ||
          log.capsuleId !== lower(item.req.capsuleId) ||
          log.executor !== getAddress(item.req.executor) ||
          log.ephemeralKey !== lower(item.req.ephemeralKey)
        ) {
          return { recorded: false, reason: 'no-matching-log' }
        }
        const shortfall = parseShortfall(logs, accessController, log.grantId)
        return {
          recorded: true,
          grantId: log.grantId,
          ...(shortfall === undefined ? {} : { shortfall }),
        }
      })
      return {
        transactionHash: lower(receipt.hash),
        blockNumber: Number(receipt.blockNumber),
        outcomes,
      }
    },

    async recordFastPathGrant(req: FastPathRecord, jobParams, signature) {
      const receipt = await sendAudit('recordFastPathGrant', [
        { ...req, nonce: toBeHex(req.nonce, 32) },
        jobParams,
        signature,
      ])
      const log = (receipt.logs as Log[])
        .map((l) => parseGrantLog(l))
        .find((l) => l !== undefined && l.address === accessController)
      const shortfall = parseShortfall(receipt.logs as Log[], accessController)
      return {
        grantId: log?.grantId ?? '0x',
        transactionHash: lower(receipt.hash),
        blockNumber: Number(receipt.blockNumber),
        ...(shortfall === undefined ? {} : { shortfall }),
      }
    },
  }

  /**
   * `hubJob` for `hub`: the block's hash agreed first (a reorg that removed the block shows as
   * another hash), then `jobs(jobId)` read at that hash on every RPC.
   */
  function hubJobReader(hub: string) {
    return async (jobId: string, blockNumber: number): Promise<HubJob> => {
      const block = await rpcs.agree('block hash', async (p) => {
        const b = await p.getBlock(blockNumber)
        if (!b?.hash) throw new Error(`block ${blockNumber} not found`)
        return lower(b.hash)
      })
      const data = abi().hub.encodeFunctionData('jobs', [jobId])
      return rpcs.agree('hub job', async (p) =>
        decodeHubJob(await p.call({ to: hub, data, blockTag: block })),
      )
    }
  }

  /** Sends an audit transaction from the operator account and waits for its receipt. */
  async function sendAudit(
    fn: 'recordFastPathGrant' | 'recordFastPathGrants',
    args: unknown[],
  ): Promise<{ hash: string; blockNumber: number | bigint; logs: readonly Log[] }> {
    if (signer === undefined) {
      throw new QuorumError('No signer configured to record fast-path grants', {
        details: { operation: fn },
      })
    }
    const c = new Contract(accessController, accessControllerAbi as never, signer)
    let sent = false
    try {
      const tx = await c.getFunction(fn)(...args)
      sent = true
      const receipt = await tx.wait()
      // The next reads (this capsule's run count, the nonce) must see this block.
      rpcs.notice(Number(receipt.blockNumber))
      return receipt
    } catch (err) {
      // NonceManager counts a nonce before sending: one never sent (a revert in gas
      // estimation, no funds, RPC down) must not leave a gap. Audit records are sent one at
      // a time, so re-reading the pending count is safe here.
      if (!sent && signer instanceof NonceManager) signer.reset()
      throw decodeRevert(err)
    }
  }
}
