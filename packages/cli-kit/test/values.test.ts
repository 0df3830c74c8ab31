import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  address,
  pcrList,
  positiveEther,
  positiveInteger,
  rpcChainId,
  UsageError,
  wholeNumber,
} from '../src/index.ts'

describe('flag value parsers', () => {
  it('pcrList: ranges and single PCRs, sorted, each once; anything else is a usage error', () => {
    expect(pcrList('0-7,15', 'pcr-policy')).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 15])
    expect(pcrList(' 7 , 2,2,0-1', 'pcr-policy')).toEqual([0, 1, 2, 7])
    expect(pcrList('23', 'pcr-policy')).toEqual([23])
    for (const bad of ['', '24', '7-3', '0-24', '1,,2', 'a', '-1', '1-', '0x7', '100']) {
      expect(() => pcrList(bad, 'pcr-policy'), bad).toThrow(
        expect.objectContaining({
          code: 'USAGE',
          shortMessage: '--pcr-policy must list PCRs 0–23, e.g. 0-7,15',
        }),
      )
    }
  })

  it('positiveEther: decimal ether to wei, exactly; anything else is a usage error', () => {
    expect(positiveEther('1', 'stake')).toBe(10n ** 18n)
    expect(positiveEther('0.01', 'stake')).toBe(10n ** 16n)
    expect(positiveEther('.5', 'stake')).toBe(5n * 10n ** 17n)
    expect(positiveEther('0.000000000000000001', 'stake')).toBe(1n)
    expect(positiveEther('123456789.123456789', 'stake')).toBe(123456789123456789000000000n)
    for (const bad of [
      '0',
      '0.0',
      '',
      '.',
      '-1',
      '1e3',
      '0x10',
      '1.0000000000000000001',
      ' 1',
      '1,5',
    ]) {
      expect(() => positiveEther(bad, 'stake'), bad).toThrow(
        expect.objectContaining({
          code: 'USAGE',
          shortMessage: '--stake must be a positive amount of ether',
        }),
      )
    }
  })

  it('whole and positive integers refuse signs, exponents, fractions and unsafe sizes', () => {
    expect(wholeNumber('0', 'n')).toBe(0)
    expect(positiveInteger('7', 'n')).toBe(7)
    for (const bad of ['-1', '1e3', '1.5', '0x1', '9007199254740993', '']) {
      expect(() => wholeNumber(bad, 'n'), bad).toThrow(UsageError)
    }
    expect(() => positiveInteger('0', 'n')).toThrow('--n must be a positive integer')
  })

  it('address: 0x and 40 hex digits, nothing else', () => {
    const a = `0x${'aB'.repeat(20)}`
    expect(address(a, 'owner')).toBe(a)
    for (const bad of [a.slice(2), `${a}0`, `0x${'g'.repeat(40)}`]) {
      expect(() => address(bad, 'owner')).toThrow(UsageError)
    }
  })
})

describe('rpcChainId', () => {
  let server: Server
  let url: string
  /** What the RPC answers next (a lying or broken RPC is the point of this server). */
  let answer: string
  beforeAll(async () => {
    server = createServer((req, res) => {
      req.resume()
      req.on('end', () => res.end(answer))
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })
  afterAll(() => new Promise<void>((r) => server.close(() => r())))

  it('returns the chain id, and refuses another chain or a malformed answer as CHAIN_UNREACHABLE', async () => {
    answer = JSON.stringify({ jsonrpc: '2.0', id: 1, result: '0x7a69' })
    expect(await rpcChainId(url)).toBe(31337)
    expect(await rpcChainId(url, 31337)).toBe(31337)
    await expect(rpcChainId(url, 1)).rejects.toMatchObject({
      code: 'CHAIN_UNREACHABLE',
      shortMessage: 'The RPC serves another chain',
      details: { expected: 1, got: 31337 },
    })
    for (const bad of ['not json', '{"result":12}', '{"result":"0xzz"}', '{"error":{}}']) {
      answer = bad
      await expect(rpcChainId(url), bad).rejects.toMatchObject({
        code: 'CHAIN_UNREACHABLE',
        shortMessage: 'The chain RPC does not answer',
      })
    }
  })

  it('a closed port is CHAIN_UNREACHABLE naming the URL', async () => {
    await expect(rpcChainId('http://127.0.0.1:9')).rejects.toMatchObject({
      code: 'CHAIN_UNREACHABLE',
      details: { rpcUrl: 'http://127.0.0.1:9' },
    })
  })
})
