import { LOCAL_NETWORK } from '@digicap/contracts'
import { describe, expect, it } from 'vitest'
import {
  defineNetwork,
  getNetwork,
  listNetworks,
  NetworkInvalidError,
  NetworkUnknownError,
  registerNetwork,
} from '../src/index.ts'

const addresses = {
  capsuleRegistry: '0x1111111111111111111111111111111111111111',
  nodeRegistry: '0x2222222222222222222222222222222222222222',
  accessController: '0x3333333333333333333333333333333333333333',
}

function codeOf(fn: () => unknown): { code?: string | undefined; field?: unknown } {
  try {
    fn()
  } catch (e) {
    return {
      code: (e as { code?: string }).code,
      field: (e as { details?: { field?: unknown } }).details?.field,
    }
  }
  return {}
}

describe('named networks', () => {
  it('`local` is the deployment that ships with @digicap/contracts', () => {
    expect(getNetwork('local')).toBe(LOCAL_NETWORK)
    expect(getNetwork(31337)).toBe(LOCAL_NETWORK)
  })

  it('an rpcUrl override keeps the deployment and changes only the endpoint', () => {
    const n = getNetwork('local', { rpcUrl: 'http://127.0.0.1:9999' })
    expect(n).toEqual({ ...LOCAL_NETWORK, rpcUrl: 'http://127.0.0.1:9999' })
    expect(getNetwork('local').rpcUrl).toBe('http://127.0.0.1:8545')
    // The settlement contracts travel with the deployment (the override once dropped them).
    expect(n.addresses.attestationHub).toBe(LOCAL_NETWORK.addresses.attestationHub)
    expect(n.addresses.committeeSortition).toBe(LOCAL_NETWORK.addresses.committeeSortition)
  })

  it('a settlement address in a network description is checked like the others', () => {
    expect(() =>
      defineNetwork({
        chainId: 7,
        rpcUrl: 'http://127.0.0.1:1',
        addresses: { ...addresses, attestationHub: '0x1234' },
      }),
    ).toThrow(NetworkInvalidError)
  })

  it('registerNetwork makes a deployment nameable by name and chain id', () => {
    const n = registerNetwork({
      name: 'acme-test',
      chainId: 424242,
      rpcUrl: 'https://rpc.example',
      addresses,
    })
    expect(getNetwork('acme-test')).toBe(n)
    expect(getNetwork(424242)).toBe(n)
    expect(listNetworks().map((x) => x.name)).toContain('acme-test')
    // default name from the chain id
    expect(registerNetwork({ chainId: 7, rpcUrl: 'http://x', addresses }).name).toBe('chain-7')
  })

  it('an unknown name or chain id is a typed error that lists the known ones', () => {
    let err: unknown
    try {
      getNetwork('nope')
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(NetworkUnknownError)
    expect((err as NetworkUnknownError).details.known).toContain('local')
    expect(codeOf(() => getNetwork(999999999)).code).toBe('NETWORK_UNKNOWN')
  })

  it('`local` cannot be replaced, and shipped networks cannot be mutated', () => {
    expect(
      codeOf(() =>
        registerNetwork({ name: 'local', chainId: 31337, rpcUrl: 'http://evil', addresses }),
      ),
    ).toEqual({
      code: 'NETWORK_INVALID',
      field: 'name',
    })
    expect(() =>
      registerNetwork({ name: 'local', chainId: 31337, rpcUrl: 'http://evil', addresses }),
    ).toThrow(NetworkInvalidError)
    expect(getNetwork('local')).toBe(LOCAL_NETWORK)
    const n = registerNetwork({ name: 'frozen', chainId: 5, rpcUrl: 'http://x', addresses })
    expect(() => {
      ;(n.addresses as { nodeRegistry: string }).nodeRegistry = '0x0'
    }).toThrow(TypeError)
  })

  it.each([
    [{ chainId: 0 }, 'chainId'],
    [{ chainId: -1 }, 'chainId'],
    [{ chainId: 1.5 }, 'chainId'],
    [{ chainId: '1' }, 'chainId'],
    [{ rpcUrl: 'not a url' }, 'rpcUrl'],
    [{ rpcUrl: 'file:///etc/passwd' }, 'rpcUrl'],
    [{ name: 'Upper Case' }, 'name'],
    [{ name: '__proto__' }, 'name'],
    [{ deployBlock: -1 }, 'deployBlock'],
    [{ addresses: { ...addresses, nodeRegistry: '0x1234' } }, 'addresses.nodeRegistry'],
    [{ addresses: { ...addresses, nodeRegistry: 42 } }, 'addresses.nodeRegistry'],
    // EIP-55: one flipped letter case in a checksummed address is a typo
    [
      { addresses: { ...addresses, nodeRegistry: '0x5fbDB2315678afecb367f032d93F642f64180aa3' } },
      'addresses.nodeRegistry',
    ],
    [{ addresses: undefined }, 'addresses'],
  ])('refuses %j with NETWORK_INVALID naming %s', (patch, field) => {
    const p = { name: 'bad', chainId: 1, rpcUrl: 'http://x', addresses, ...patch } as never
    expect(codeOf(() => defineNetwork(p))).toEqual({ code: 'NETWORK_INVALID', field })
    expect(codeOf(() => registerNetwork(p))).toEqual({ code: 'NETWORK_INVALID', field })
  })

  it('lower-case addresses are accepted and stored checksummed', () => {
    const n = defineNetwork({
      chainId: 1,
      rpcUrl: 'http://x',
      addresses: { ...addresses, nodeRegistry: LOCAL_NETWORK.addresses.nodeRegistry.toLowerCase() },
    })
    expect(n.addresses.nodeRegistry).toBe(LOCAL_NETWORK.addresses.nodeRegistry)
  })
})
