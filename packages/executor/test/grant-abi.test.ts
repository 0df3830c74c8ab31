/**
 * The hand-written `getGrant` / `runCount` calls and decoders (a fast-path run's recorded-grant
 * lookup without ethers, ADR 0052, 0073) against ethers' ABI coder on the contracts' ABI, and the
 * JSON-RPC reads against a real anvil: same answers as the contract's own getter, `undefined` for
 * an unknown grant, and a refusal (never a half-decoded grant) for an answer that is not the tuple.
 */
import { accessControllerAbi, createProvider, deployDigicap } from '@digicap/contracts'
import {
  decodeGetGrant,
  decodeRunCount,
  GET_GRANT_SELECTOR,
  GRANT_NOT_FOUND_SELECTOR,
  GrantAbiError,
  getGrantCallData,
  RUN_COUNT_SELECTOR,
  runCountCallData,
} from '@digicap/contracts/light'
import { startAnvil } from '@digicap/contracts/testing'
import { getBytes, hexlify, Interface, randomBytes, type Wallet } from 'ethers'
import { describe, expect, it } from 'vitest'
import { ethersExecutorChain, ethersResultGrants } from '../src/index.ts'
import { jsonRpcGrantReads } from '../src/registry/json-rpc-registry.ts'

const controller = new Interface(accessControllerAbi as never)
const getGrant = controller.getFunction('getGrant')
const runCount = controller.getFunction('runCount')
if (getGrant === null || runCount === null) throw new TypeError('getGrant/runCount missing')

const grant = (over: Record<string, unknown> = {}) => ({
  executor: '0x1111111111111111111111111111111111111111',
  runIndex: 7,
  expiresAt: 1_700_000_600,
  fastPath: true,
  capsuleId: hexlify(randomBytes(32)),
  ephemeralKey: hexlify(randomBytes(32)),
  ...over,
})

describe('getGrant and runCount by hand', () => {
  it('have the ABI’s selectors and call data', () => {
    expect(GET_GRANT_SELECTOR).toBe(getGrant.selector)
    expect(RUN_COUNT_SELECTOR).toBe(runCount.selector)
    expect(GRANT_NOT_FOUND_SELECTOR).toBe(controller.getError('GrantNotFound')?.selector)
    const id = randomBytes(32)
    expect(getGrantCallData(id)).toBe(controller.encodeFunctionData(getGrant, [id]))
    expect(runCountCallData(id)).toBe(controller.encodeFunctionData(runCount, [id]))
    expect(() => getGrantCallData(randomBytes(31))).toThrow(TypeError)
  })

  it('decode what the contract encodes', () => {
    for (const g of [grant(), grant({ fastPath: false, runIndex: 2 ** 40 - 1 })]) {
      expect(decodeGetGrant(controller.encodeFunctionResult(getGrant, [g]))).toEqual({
        executor: getBytes(g.executor),
        runIndex: BigInt(g.runIndex),
        capsuleId: getBytes(g.capsuleId),
        ephemeralKey: getBytes(g.ephemeralKey),
      })
    }
    expect(decodeRunCount(controller.encodeFunctionResult(runCount, [123n]))).toBe(123n)
  })

  it('refuse an answer that is not the tuple', () => {
    const good = controller.encodeFunctionResult(getGrant, [grant()])
    const word = (i: number) => 2 + i * 64
    const put = (i: number, w: string) => good.slice(0, word(i)) + w + good.slice(word(i) + 64)
    for (const bad of [
      good.slice(0, -2), // a byte short
      `${good}00`, // a byte long
      put(0, 'ff'.repeat(32)), // not an address
      put(1, 'ff'.repeat(32)), // runIndex over uint40
      put(3, `${'00'.repeat(31)}02`), // not a bool
      'nothex',
    ]) {
      expect(() => decodeGetGrant(bad), bad.slice(0, 20)).toThrow(GrantAbiError)
    }
    expect(() => decodeRunCount('0x')).toThrow(GrantAbiError)
  })

  it('read the same grants and counts as the contract over JSON-RPC (anvil), undefined for an unknown id', async () => {
    const anvil = await startAnvil()
    try {
      const contracts = await deployDigicap(anvil.signers[0] as Wallet)
      const reads = jsonRpcGrantReads({
        rpcUrls: [anvil.rpcUrl],
        accessController: contracts.accessController,
      })
      expect(await reads.getGrant(randomBytes(32))).toBeUndefined()
      expect(await reads.runCount(randomBytes(32))).toBe(0n)
      // The same reader over ethers' providers (ethersExecutorChain's and ethersResultGrants'):
      // ethers reports the revert its own way, still `GrantNotFound`.
      const provider = createProvider(anvil.rpcUrl, BigInt(contracts.chainId))
      const chain = ethersExecutorChain({
        addresses: contracts,
        signer: (anvil.signers[1] as Wallet).connect(provider),
      })
      expect(await chain.getGrant(randomBytes(32))).toBeUndefined()
      expect(await chain.runCount(randomBytes(32))).toBe(0n)
      const grants = ethersResultGrants({
        chainId: contracts.chainId,
        accessController: contracts.accessController,
        runner: provider,
      })
      expect(await grants.getGrant(randomBytes(32))).toBeUndefined()
      expect(() =>
        ethersResultGrants({
          chainId: 1,
          accessController: contracts.accessController,
          runner: { provider: null },
        }),
      ).toThrow(/JSON-RPC provider/)
    } finally {
      await anvil.stop()
    }
  }, 60_000)
})
