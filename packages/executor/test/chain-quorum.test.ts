/**
 * The executor's registry checks through a quorum of real RPCs: a revoked capsule on anvil A,
 * anvil B a fork of A (a second real node of the same chain), and a lying JSON-RPC proxy in
 * front of A that says the capsule is live. Alone, the liar fools the check; in a quorum it is
 * outvoted and named. Both readers: the ethers chain client's, and the plain JSON-RPC one a
 * node uses for every run (no ethers at start, ADR 0052).
 */

import { ChainReadError } from '@digicap/capsule-core'
import {
  capsuleRegistryAbi,
  connectDigicap,
  createProvider,
  type DigicapAddresses,
  type DisagreementEvent,
  deployDigicap,
  environment,
} from '@digicap/contracts'
import { deployPolicy } from '@digicap/contracts/compiler'
import { type Anvil, type RpcProxy, startAnvil, startRpcProxy } from '@digicap/contracts/testing'
import { hexlify, Interface, randomBytes, type Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AccessUnavailableError, ethersExecutorChain } from '../src/index.ts'
import { jsonRpcGetCapsule } from '../src/registry/json-rpc-registry.ts'

let a: Anvil
let b: Anvil
let liar: RpcProxy
let addresses: DigicapAddresses
let revoked: string
let executor: Wallet

const registry = new Interface(capsuleRegistryAbi as never)
const getCapsule = registry.getFunction('getCapsule')
if (getCapsule === null) throw new TypeError('getCapsule missing from the ABI')

beforeAll(async () => {
  a = await startAnvil()
  const [deployer, owner, exec] = a.signers as Wallet[]
  executor = exec as Wallet
  addresses = await deployDigicap(deployer as Wallet)
  const policy = await deployPolicy(owner as Wallet, environment(hexlify(randomBytes(32))), {
    nodeRegistry: addresses.nodeRegistry,
  })
  const c = connectDigicap(addresses, owner as Wallet)
  revoked = hexlify(randomBytes(32))
  await (
    await c.capsuleRegistry.register(
      revoked,
      policy.address,
      'bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi',
      hexlify(randomBytes(32)),
      randomBytes(38),
      hexlify(randomBytes(32)),
    )
  ).wait()
  await (await c.capsuleRegistry.revoke(revoked)).wait()
  b = await startAnvil({ args: ['--fork-url', a.rpcUrl] })
  // The liar answers getCapsule with the capsule as it was before the owner revoked it.
  liar = await startRpcProxy(a.rpcUrl, (call, result) => {
    const tx = call.params[0] as { data?: string; input?: string } | undefined
    const data = tx?.data ?? tx?.input ?? ''
    if (call.method !== 'eth_call' || !data.startsWith(getCapsule.selector)) return result
    const [capsule] = registry.decodeFunctionResult(getCapsule, result as string)
    const live = { ...capsule.toObject(), revoked: false }
    return registry.encodeFunctionResult(getCapsule, [live])
  })
}, 120_000)

afterAll(async () => {
  await liar?.close()
  await b?.stop()
  await a?.stop()
})

function ethersReader(urls: string[], quorum?: number) {
  const disagreements: DisagreementEvent[] = []
  const chain = ethersExecutorChain({
    addresses,
    signer: executor.connect(createProvider(a.rpcUrl, 31337n)),
    readProviders: urls.map((u) => createProvider(u, 31337n)),
    ...(quorum === undefined ? {} : { quorum }),
    onDisagreement: (e) => disagreements.push(e),
  })
  return { getCapsule: chain.getCapsule.bind(chain), chain, disagreements }
}

function jsonRpcReader(urls: string[], quorum?: number) {
  const disagreements: DisagreementEvent[] = []
  const getCapsule = jsonRpcGetCapsule({
    rpcUrls: urls,
    capsuleRegistry: addresses.capsuleRegistry,
    quorum,
    onDisagreement: (e) => disagreements.push(e),
  })
  return { getCapsule, chain: undefined, disagreements }
}

describe.each([
  ['ethers', ethersReader],
  ['JSON-RPC', jsonRpcReader],
])('the executor’s registry check (%s)', (_name, readerOver) => {
  it('is fooled by a single lying RPC (why a quorum is needed)', async () => {
    const { getCapsule } = readerOver([liar.url])
    expect((await getCapsule(bytesOf(revoked)))?.revoked).toBe(false)
  })

  it('with a quorum of three, sees the revocation and names the liar', async () => {
    const { getCapsule, chain, disagreements } = readerOver([a.rpcUrl, b.rpcUrl, liar.url], 2)
    const capsule = await getCapsule(bytesOf(revoked))
    expect(capsule?.revoked).toBe(true)
    expect(disagreements.map((d) => [d.operation, d.dissent.map((x) => x.rpc)])).toEqual([
      ['getCapsule', [`#2 ${new URL(liar.url).host}`]],
    ])
    // Unknown capsules and registrations are answered through the quorum too.
    expect(await getCapsule(randomBytes(32))).toBeUndefined()
    if (chain) expect(await chain.isRegistered(executor.address)).toBe(false)
  })

  it('refuses with a typed error when the RPCs disagree and no quorum is left', async () => {
    const { getCapsule } = readerOver([a.rpcUrl, liar.url], 2)
    const err = await getCapsule(bytesOf(revoked)).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(AccessUnavailableError)
    const e = err as AccessUnavailableError
    expect(e.code).toBe('ACCESS_UNAVAILABLE')
    expect(e.details).toMatchObject({ operation: 'getCapsule', quorum: 2 })
    expect(e.details.dissent).toEqual([
      expect.objectContaining({ rpc: `#0 ${new URL(a.rpcUrl).host}`, kind: 'differs', answer: 0 }),
      expect.objectContaining({ rpc: `#1 ${new URL(liar.url).host}`, kind: 'differs', answer: 1 }),
    ])
    expect(e.hint).toMatch(/^Retry shortly/)
  })
})

describe('the JSON-RPC registry read', () => {
  it('reads what ethers reads, field by field', async () => {
    const viaEthers = await ethersReader([a.rpcUrl]).getCapsule(bytesOf(revoked))
    const viaJson = await jsonRpcReader([a.rpcUrl]).getCapsule(bytesOf(revoked))
    expect(viaJson).toEqual({
      ...viaEthers,
      owner: viaEthers?.owner.toLowerCase(),
      policy: viaEthers?.policy.toLowerCase(),
    })
  })

  it('an RPC that is down, or answers garbage: ACCESS_UNAVAILABLE, never a crash', async () => {
    const down = await jsonRpcReader(['http://127.0.0.1:1'])
      .getCapsule(bytesOf(revoked))
      .catch((e: unknown) => e)
    expect(down).toBeInstanceOf(AccessUnavailableError)
    expect((down as AccessUnavailableError).cause).toBeInstanceOf(ChainReadError)
    // A lying RPC whose getCapsule answer is cut short: refused, not half-decoded.
    const cut = await startRpcProxy(a.rpcUrl, (call, result) =>
      call.method === 'eth_call' ? (result as string).slice(0, 200) : result,
    )
    try {
      const err = await jsonRpcReader([cut.url])
        .getCapsule(bytesOf(revoked))
        .catch((e: unknown) => e)
      expect(err).toBeInstanceOf(AccessUnavailableError)
      expect((err as AccessUnavailableError).shortMessage).toBe('Registry lookup failed')
    } finally {
      await cut.close()
    }
  })
})

function bytesOf(hex: string): Uint8Array {
  return Uint8Array.from(Buffer.from(hex.slice(2), 'hex'))
}
