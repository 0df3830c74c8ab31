/**
 * What the executor needs of the chain, apart from its one implementation (ethers over
 * `@digicap/contracts`). Tests and other hosts may pass their own.
 */
import {
  ContractRevertError,
  connectDigicap,
  createRpcQuorum,
  type DigicapAddresses,
  type DisagreementEvent,
  decodeRevert,
  parseEvents,
  QuorumError,
  reasonName,
} from '@digicap/contracts'
import type { GrantRecord } from '@digicap/protocol'
import { getBytes, hexlify, type JsonRpcApiProvider, type Signer } from 'ethers'
import { AccessDeniedError, AccessUnavailableError } from './errors.ts'
import { jsonRpcGrantReads } from './registry/json-rpc-registry.ts'
import type { RegisteredCapsule } from './registry/types.ts'

export type { RegisteredCapsule } from './registry/types.ts'

/** A chain-path grant, from the `AccessGranted` event of the executor's own transaction. */
export interface ChainGrant {
  readonly grantId: Uint8Array
  /** Unix seconds after which the keyguard no longer releases. */
  readonly expiresAt: number
  readonly transactionHash: string
}

export interface ChainAccessRequest {
  readonly capsuleId: Uint8Array
  readonly ephemeralKey: Uint8Array
  readonly measurement: Uint8Array
  readonly jobParams: Uint8Array
  /** Wei sent with the request (the policy's fee). */
  readonly fee: bigint
}

export interface ExecutorChain {
  readonly chainId: bigint
  /** CapsuleRegistry address (the header's `policy.registry` must equal it). */
  readonly capsuleRegistry: string
  /** AccessController address (the fast path's EIP-712 `verifyingContract`). */
  readonly accessController: string
  /**
   * The capsule as registered, or undefined when the registry does not know it.
   * @throws {AccessUnavailableError} when the registry cannot be read, or when fewer than the
   * quorum of RPCs agree (`details.dissent` names the ones that did not).
   */
  getCapsule(capsuleId: Uint8Array): Promise<RegisteredCapsule | undefined>
  /**
   * Sends `requestAccess` and returns the grant from its receipt.
   * @throws {AccessDeniedError} when the policy (or the controller) reverts `AccessDenied`.
   * @throws {AccessUnavailableError} for any other revert or RPC failure.
   */
  requestAccess(request: ChainAccessRequest): Promise<ChainGrant>
  /**
   * The grant as the AccessController stores it, or undefined when unknown. With `runCount`,
   * lets the executor find the id a fast-path audit was recorded under when it differs from the
   * keyguard's answer (ADR 0073; `findRecordedGrant`). Optional: without both, a fast-path
   * result is delivered under the answered id. The chain path also uses it to follow its request
   * when a reorg re-included it under another grant id (same capsule, the run's ephemeral key).
   * @throws {AccessUnavailableError} when the chain cannot be asked.
   */
  getGrant?(grantId: Uint8Array): Promise<GrantRecord | undefined>
  /**
   * The capsule's run count (grants made so far, chain and fast path).
   * @throws {AccessUnavailableError} when the chain cannot be asked.
   */
  runCount?(capsuleId: Uint8Array): Promise<bigint>
  /**
   * NodeRegistry `register(peerId, attestationKeyHash, roles)` with `stake` wei; returns the tx hash.
   * @throws {ContractRevertError} (from `@digicap/contracts`) naming the revert, e.g. `AlreadyRegistered`.
   */
  registerNode(p: {
    peerId: Uint8Array
    attestationKeyHash: Uint8Array
    roles: number
    stake: bigint
  }): Promise<string>
  /**
   * Whether `address` is registered in NodeRegistry.
   * @throws {QuorumError} (from `@digicap/contracts`) when fewer than the quorum of RPCs agree.
   */
  isRegistered(address: string): Promise<boolean>
}

export interface EthersExecutorChainInit {
  readonly addresses: Pick<
    DigicapAddresses,
    'chainId' | 'capsuleRegistry' | 'nodeRegistry' | 'accessController'
  >
  /** The executor's Ethereum account, connected to a provider. */
  readonly signer: Signer
  /**
   * RPCs of the same chain for the registry reads (`getCapsule`, `isRegistered`), compared
   * through `createRpcQuorum` at one pinned block: a single lying RPC cannot vouch for a
   * capsule. Default: the signer's provider alone.
   */
  readonly readProviders?: readonly JsonRpcApiProvider[]
  /** How many of `readProviders` must agree. Default: a majority. */
  readonly quorum?: number
  /** Told when a quorum answered but some RPCs dissented (one of them lies or lags). */
  readonly onDisagreement?: (event: DisagreementEvent) => void
}

function denied(err: unknown): AccessDeniedError | AccessUnavailableError {
  const e = decodeRevert(err)
  if (e instanceof ContractRevertError) {
    if (e.errorName === 'AccessDenied') {
      return new AccessDeniedError(reasonName(e.args[2] as bigint), 'chain', { cause: e })
    }
    if (e.errorName === 'ExecutorNotRegistered' || e.errorName === 'NodeNotRegistered') {
      return new AccessDeniedError('EXECUTOR_NOT_REGISTERED', 'chain', { cause: e })
    }
    return new AccessUnavailableError('requestAccess reverted', {
      details: { error: e.errorName ?? 'unknown' },
      cause: e,
    })
  }
  return new AccessUnavailableError('requestAccess failed', { cause: err })
}

/**
 * The ethers implementation.
 * @example
 * ```ts
 * const chain = ethersExecutorChain({ addresses, signer: wallet.connect(createProvider(url, 31337)) })
 * ```
 */
export function ethersExecutorChain(
  init: EthersExecutorChainInit,
): ExecutorChain & Required<Pick<ExecutorChain, 'getGrant' | 'runCount'>> {
  const c = connectDigicap(init.addresses, init.signer)
  const own = init.signer.provider as JsonRpcApiProvider | null
  const readProviders = init.readProviders ?? (own === null ? [] : [own])
  // The registry is read once per run: a fresh pin each time (no cache to go stale).
  const rpcs = createRpcQuorum({
    providers: readProviders,
    pinMaxAgeMs: 0,
    ...(init.quorum === undefined ? {} : { quorum: init.quorum }),
    ...(init.onDisagreement === undefined ? {} : { onDisagreement: init.onDisagreement }),
  })
  const readers = rpcs.providers.map((p) => connectDigicap(init.addresses, p))
  const reader = (i: number) => readers[i] as (typeof readers)[number]
  return {
    chainId: BigInt(init.addresses.chainId),
    capsuleRegistry: init.addresses.capsuleRegistry,
    accessController: init.addresses.accessController,
    async getCapsule(capsuleId) {
      let found: Omit<RegisteredCapsule, 'plaintextHash'> & { plaintextHash: string }
      try {
        const r = await rpcs.read('getCapsule', async ({ index, blockTag }) => {
          try {
            const r = await reader(index).capsuleRegistry.getCapsule(hexlify(capsuleId), {
              blockTag,
            })
            return {
              owner: String(r.owner),
              policy: String(r.policy),
              cid: String(r.cid),
              revoked: Boolean(r.revoked),
              plaintextHash: hexlify(r.plaintextHash),
            }
          } catch (err) {
            const e = decodeRevert(err)
            if (e instanceof ContractRevertError && e.errorName === 'CapsuleNotFound') {
              return undefined
            }
            throw err
          }
        })
        if (r === undefined) return undefined
        found = r
      } catch (err) {
        throw new AccessUnavailableError('Registry lookup failed', {
          ...(err instanceof QuorumError
            ? { details: { ...err.details }, ...(err.hint === undefined ? {} : { hint: err.hint }) }
            : {}),
          cause: err,
        })
      }
      return { ...found, plaintextHash: getBytes(found.plaintextHash) }
    },
    async requestAccess(r) {
      let receipt: Awaited<
        ReturnType<Awaited<ReturnType<typeof c.accessController.requestAccess>>['wait']>
      >
      try {
        const tx = await c.accessController.requestAccess(
          hexlify(r.capsuleId),
          hexlify(r.ephemeralKey),
          hexlify(r.measurement),
          hexlify(r.jobParams),
          { value: r.fee },
        )
        receipt = await tx.wait()
      } catch (err) {
        throw denied(err)
      }
      if (!receipt) throw new AccessUnavailableError('requestAccess has no receipt')
      const [granted] = parseEvents(c.accessController, receipt, 'AccessGranted')
      if (!granted) throw new AccessUnavailableError('requestAccess emitted no AccessGranted')
      const g = granted as unknown as { grantId: string; expiresAt: bigint }
      return {
        grantId: getBytes(g.grantId),
        expiresAt: Number(g.expiresAt),
        transactionHash: receipt.hash,
      }
    },
    // The one grant reader (hand ABI, plain JSON-RPC): the same reads as the one-shot node's.
    ...jsonRpcGrantReads({
      providers: rpcs.providers,
      accessController: init.addresses.accessController,
      ...(init.quorum === undefined ? {} : { quorum: init.quorum }),
      ...(init.onDisagreement === undefined ? {} : { onDisagreement: init.onDisagreement }),
    }),
    async registerNode(p) {
      try {
        const tx = await c.nodeRegistry.register(p.peerId, hexlify(p.attestationKeyHash), p.roles, {
          value: p.stake,
        })
        await tx.wait()
        return tx.hash
      } catch (err) {
        const e = decodeRevert(err)
        if (e instanceof ContractRevertError) throw e
        throw new AccessUnavailableError('NodeRegistry register failed', { cause: err })
      }
    },
    async isRegistered(address) {
      try {
        return await rpcs.read('getNode', async ({ index, blockTag }) => {
          try {
            const n = await reader(index).nodeRegistry.getNode(address, { blockTag })
            return Boolean((n as unknown as { registered?: boolean }).registered ?? true)
          } catch (err) {
            // A revert (`NotRegistered`) is an answer; a transport failure is not.
            if (decodeRevert(err) instanceof ContractRevertError) return false
            throw err
          }
        })
      } catch (err) {
        if (err instanceof QuorumError) throw err
        return false
      }
    },
  }
}
