/**
 * What the executor needs of the chain, apart from its one implementation (ethers over
 * `@digicap/contracts`). Tests and other hosts may pass their own.
 */
import {
  ContractRevertError,
  connectDigicap,
  type DigicapAddresses,
  decodeRevert,
  parseEvents,
  reasonName,
} from '@digicap/contracts'
import { getBytes, hexlify, type Signer } from 'ethers'
import { AccessDeniedError, AccessUnavailableError } from './errors.ts'

/** A capsule as the CapsuleRegistry lists it. */
export interface RegisteredCapsule {
  readonly owner: string
  readonly policy: string
  readonly cid: string
  readonly revoked: boolean
  /** The plaintext commitment the owner registered (32 bytes). */
  readonly plaintextHash: Uint8Array
}

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
  /** The capsule as registered, or undefined when the registry does not know it. */
  getCapsule(capsuleId: Uint8Array): Promise<RegisteredCapsule | undefined>
  /**
   * Sends `requestAccess` and returns the grant from its receipt.
   * @throws {AccessDeniedError} when the policy (or the controller) reverts `AccessDenied`.
   * @throws {AccessUnavailableError} for any other revert or RPC failure.
   */
  requestAccess(request: ChainAccessRequest): Promise<ChainGrant>
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
  /** Whether `address` is registered in NodeRegistry. */
  isRegistered(address: string): Promise<boolean>
}

export interface EthersExecutorChainInit {
  readonly addresses: Pick<
    DigicapAddresses,
    'chainId' | 'capsuleRegistry' | 'nodeRegistry' | 'accessController'
  >
  /** The executor's Ethereum account, connected to a provider. */
  readonly signer: Signer
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
export function ethersExecutorChain(init: EthersExecutorChainInit): ExecutorChain {
  const c = connectDigicap(init.addresses, init.signer)
  return {
    chainId: BigInt(init.addresses.chainId),
    capsuleRegistry: init.addresses.capsuleRegistry,
    accessController: init.addresses.accessController,
    async getCapsule(capsuleId) {
      try {
        const r = await c.capsuleRegistry.getCapsule(hexlify(capsuleId))
        return {
          owner: String(r.owner),
          policy: String(r.policy),
          cid: String(r.cid),
          revoked: Boolean(r.revoked),
          plaintextHash: getBytes(r.plaintextHash),
        }
      } catch (err) {
        const e = decodeRevert(err)
        if (e instanceof ContractRevertError && e.errorName === 'CapsuleNotFound') return undefined
        throw new AccessUnavailableError('Registry lookup failed', { cause: err })
      }
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
        const n = await c.nodeRegistry.getNode(address)
        return Boolean((n as unknown as { registered?: boolean }).registered ?? true)
      } catch {
        return false
      }
    },
  }
}
