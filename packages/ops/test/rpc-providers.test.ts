import { describe, expect, it } from 'vitest'
import { rpcProvider, rpcProviderWarnings } from '../src/rpc-providers.ts'

describe('rpcProviderWarnings (a lone RPC can forge a grant)', () => {
  it('warns off a dev chain with fewer than two distinct providers', () => {
    const [w, ...rest] = rpcProviderWarnings({ chainId: 1, rpcUrl: 'https://eth.llamarpc.com' })
    expect(rest).toEqual([])
    expect(w).toMatchObject({
      code: 'SINGLE_RPC_PROVIDER',
      details: { chainId: 1, providers: ['llamarpc.com'] },
    })
    expect(w?.line).toBe(`${w?.message} ${w?.hint}`)
    // Two URLs of one provider (another path, another subdomain) are still one.
    expect(
      rpcProviderWarnings({
        chainId: 8453,
        rpcUrl: 'https://base-mainnet.g.alchemy.com/v2/a',
        rpcUrls: [
          'https://eth-mainnet.g.alchemy.com/v2/b',
          'https://BASE-mainnet.g.alchemy.com./v2/c',
        ],
      }),
    ).toHaveLength(1)
  })

  it('is quiet on dev chains and with two providers', () => {
    expect(rpcProviderWarnings({ chainId: 31337, rpcUrl: 'http://127.0.0.1:8545' })).toEqual([])
    expect(rpcProviderWarnings({ chainId: 1337, rpcUrl: 'http://localhost:8545' })).toEqual([])
    expect(
      rpcProviderWarnings({
        chainId: 1,
        rpcUrl: 'https://mainnet.infura.io/v3/k',
        rpcUrls: ['https://eth-mainnet.g.alchemy.com/v2/k'],
      }),
    ).toEqual([])
    expect(
      rpcProviderWarnings({
        chainId: 10,
        rpcUrl: 'http://10.0.0.1:8545',
        rpcUrls: ['http://10.0.0.2:8545'],
      }),
    ).toEqual([])
  })

  it('names a provider by its host: an IP whole, a DNS name by its last two labels', () => {
    expect(rpcProvider('http://192.168.1.4:8545')).toBe('192.168.1.4')
    expect(rpcProvider('http://[::1]:8545')).toBe('[::1]')
    expect(rpcProvider('wss://a.b.quiknode.pro/x')).toBe('quiknode.pro')
    expect(rpcProvider('not a url')).toBe('not a url')
  })
})
