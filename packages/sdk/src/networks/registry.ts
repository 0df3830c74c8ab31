/**
 * Named networks: the deployments that ship with `@digicap/contracts` (`local`), plus the ones
 * a program registers. Every SDK call takes a name, a chain id, or a network object, so the
 * registry is a convenience, never required (a program that wants no shared state passes
 * objects made with `defineNetwork`).
 */
import { normalizeAddress } from '@digicap/capsule-core'
import { type DigicapNetwork, NETWORKS } from '@digicap/contracts'
import { NetworkInvalidError, NetworkUnknownError } from '../errors.ts'

export type { DigicapNetwork }

/** A network by name (`'local'`), by chain id, or the network itself. */
export type NetworkRef = string | number | DigicapNetwork

export interface DefineNetworkParameters {
  /** Default `chain-<chainId>`. */
  readonly name?: string | undefined
  readonly chainId: number
  readonly rpcUrl: string
  readonly addresses: {
    readonly capsuleRegistry: string
    readonly nodeRegistry: string
    readonly accessController: string
    /** The committee's sortition and settlement contracts, when the deployment has them. */
    readonly committeeSortition?: string | undefined
    readonly attestationHub?: string | undefined
  }
  /** Block of the deployment (start of event scans). Default 0. */
  readonly deployBlock?: number | undefined
}

const registered = new Map<string, DigicapNetwork>()

function invalid(field: string, why: string, value: unknown): never {
  throw new NetworkInvalidError(`Network ${field} ${why}`, {
    details: { field, value: typeof value === 'string' ? value.slice(0, 100) : String(value) },
    hint: 'A network needs a positive integer chainId, an http(s) or ws(s) rpcUrl and three 0x addresses.',
  })
}

function checkAddress(field: string, value: unknown): `0x${string}` {
  if (typeof value !== 'string') return invalid(field, 'is not a string', value)
  try {
    // EIP-55: a mixed-case address carries a checksum, and a wrong one is a typo.
    return normalizeAddress(value, field)
  } catch {
    return invalid(field, 'is not 0x and 40 hex digits with a right EIP-55 checksum', value)
  }
}

/**
 * Checks a deployment's description and returns it as a frozen network (not registered).
 * @throws {NetworkInvalidError} naming the field at fault.
 */
export function defineNetwork(p: DefineNetworkParameters): DigicapNetwork {
  if (typeof p !== 'object' || p === null) return invalid('description', 'is not an object', p)
  if (!Number.isSafeInteger(p.chainId) || p.chainId <= 0)
    invalid('chainId', 'is not a positive integer', p.chainId)
  let url: URL
  try {
    url = new URL(p.rpcUrl)
  } catch {
    // Not echoed: a URL-ish string may still hold a credential.
    return invalid('rpcUrl', 'is not a URL', typeof p.rpcUrl)
  }
  if (!['http:', 'https:', 'ws:', 'wss:'].includes(url.protocol))
    invalid('rpcUrl', 'is not http(s) or ws(s)', url.protocol)
  const name = p.name ?? `chain-${p.chainId}`
  if (typeof name !== 'string' || !/^[a-z0-9][a-z0-9-]{0,62}$/.test(name)) {
    invalid('name', 'is not lowercase letters, digits and dashes', name)
  }
  const deployBlock = p.deployBlock ?? 0
  if (!Number.isSafeInteger(deployBlock) || deployBlock < 0)
    invalid('deployBlock', 'is not a block number', deployBlock)
  const a = p.addresses ?? invalid('addresses', 'are missing', p.addresses)
  return Object.freeze({
    name,
    chainId: p.chainId,
    rpcUrl: p.rpcUrl,
    addresses: Object.freeze({
      capsuleRegistry: checkAddress('addresses.capsuleRegistry', a.capsuleRegistry),
      nodeRegistry: checkAddress('addresses.nodeRegistry', a.nodeRegistry),
      accessController: checkAddress('addresses.accessController', a.accessController),
      ...(a.committeeSortition === undefined
        ? {}
        : {
            committeeSortition: checkAddress('addresses.committeeSortition', a.committeeSortition),
          }),
      ...(a.attestationHub === undefined
        ? {}
        : { attestationHub: checkAddress('addresses.attestationHub', a.attestationHub) }),
    }),
    deployBlock,
  })
}

/**
 * Registers a deployment so that calls can name it (by name or chain id). Registering a name
 * again replaces it; the names that ship with `@digicap/contracts` cannot be replaced.
 *
 * @throws {NetworkInvalidError} for a malformed description or a shipped name.
 * @example
 * ```ts
 * registerNetwork({ name: 'sepolia', chainId: 11155111, rpcUrl: 'https://rpc.sepolia.org',
 *   addresses: { capsuleRegistry: '0x…', nodeRegistry: '0x…', accessController: '0x…' } })
 * ```
 */
export function registerNetwork(p: DefineNetworkParameters): DigicapNetwork {
  const network = defineNetwork(p)
  if (Object.hasOwn(NETWORKS, network.name)) {
    invalid('name', 'is one that ships with @digicap/contracts; pick another', network.name)
  }
  registered.set(network.name, network)
  return network
}

/** Every network a name resolves to: shipped first, then registered. */
export function listNetworks(): DigicapNetwork[] {
  return [...Object.values(NETWORKS), ...registered.values()]
}

/**
 * The network `ref` names, with `rpcUrl` replaced when given (the same deployment through
 * another endpoint, e.g. a local anvil on another port).
 *
 * @throws {NetworkUnknownError} when no network has that name or chain id.
 * @throws {NetworkInvalidError} for a malformed network object or `rpcUrl`.
 */
export function getNetwork(
  ref: NetworkRef,
  overrides: { rpcUrl?: string | undefined } = {},
): DigicapNetwork {
  let network: DigicapNetwork | undefined
  if (typeof ref === 'string') {
    network = (Object.hasOwn(NETWORKS, ref) ? NETWORKS[ref] : undefined) ?? registered.get(ref)
  } else if (typeof ref === 'number') {
    network = listNetworks().find((n) => n.chainId === ref)
  } else {
    network = defineNetwork(ref)
  }
  if (network === undefined) {
    throw new NetworkUnknownError('No network by that name or chain id', {
      details: { network: String(ref), known: listNetworks().map((n) => n.name) },
      hint: 'Use a shipped name (`local`) or call registerNetwork({ name, chainId, rpcUrl, addresses }) first.',
    })
  }
  return overrides.rpcUrl === undefined
    ? network
    : defineNetwork({ ...network, rpcUrl: overrides.rpcUrl })
}
