/**
 * How the keyguard reads whether a capsule's policy requires `attested()` (on anvil, through
 * the real chain client): the generated policies answer for themselves; a policy without the
 * function (it reverts) does not require it; anything else but an ABI `false` fails closed
 * (required); an unknown capsule does not. And the executor's registered record hash, zero when
 * it has none or is not registered.
 */
import { attested, maxRuns, not } from '@digicap/contracts'
import { deployPolicy } from '@digicap/contracts/compiler'
import type { Libp2p } from '@libp2p/interface'
import { hexlify, randomBytes, ZeroHash } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type KeyguardWorld, keyguardWorld } from './helpers/keyguard-world.ts'
import { chainClientFor, MIN_STAKE, registerCapsule, send } from './helpers/world.ts'

let w: KeyguardWorld
let node: Libp2p

beforeAll(async () => {
  // Reads through the chain client only: a node's peer id to register, no keyguard.
  w = await keyguardWorld({ executors: 0, capsules: 0, keyguard: false })
  node = w.kgNode
}, 60_000)

afterAll(() => w?.stop())

/** Deploys a contract whose code is `runtime` (hex, under 32 bytes): answers every call alike. */
async function deployRuntime(runtime: string): Promise<string> {
  const n = runtime.length / 2
  const byte = (v: number) => v.toString(16).padStart(2, '0')
  // PUSHn runtime, PUSH1 0, MSTORE, PUSH1 n, PUSH1 32-n, RETURN
  const init = `0x${byte(0x5f + n)}${runtime}600052${`60${byte(n)}`}${`60${byte(32 - n)}`}f3`
  const tx = await w.chain.owner.sendTransaction({ data: init })
  const receipt = await tx.wait()
  if (!receipt?.contractAddress) throw new Error('not deployed')
  return receipt.contractAddress
}

describe('attestationRequired(capsuleId)', () => {
  it('follows the policy: attested() anywhere yes, none no, a revert no, anything odd yes', async () => {
    const client = chainClientFor(w.chain)
    const policyOf = async (rule: Parameters<typeof deployPolicy>[1]) =>
      (await deployPolicy(w.chain.owner, rule, { nodeRegistry: w.chain.addresses.nodeRegistry }))
        .address
    const cases: [string, string, boolean][] = [
      ['attested()', await policyOf(attested()), true],
      ['not(attested())', await policyOf(not(attested())), true],
      ['maxRuns(3): no such function, the call reverts', await policyOf(maxRuns(3)), false],
      // hand-made contracts that answer every call the same way
      ['returns an ABI false', await deployRuntime('600060005260206000f3'), false],
      ['returns 2 (not an ABI bool)', await deployRuntime('600260005260206000f3'), true],
      ['returns nothing', await deployRuntime('00'), true],
      ['reverts', await deployRuntime('60006000fd'), false],
    ]
    for (const [name, policy, required] of cases) {
      const capsuleId = await registerCapsule(w.chain, node, policy)
      expect(await client.attestationRequired(capsuleId), name).toBe(required)
    }
    expect(await client.attestationRequired(hexlify(randomBytes(32))), 'unknown capsule').toBe(
      false,
    )
  })
})

describe('attestationKeyHash(node)', () => {
  it('is the registered hash, zero when none is registered or the node is not', async () => {
    const client = chainClientFor(w.chain)
    const hash = hexlify(randomBytes(32))
    await send(
      w.chain.c.nodeRegistry
        .connect(w.chain.executor)
        .register(node.peerId.toMultihash().bytes, hash, 1, { value: MIN_STAKE }),
    )
    expect(await client.attestationKeyHash(w.chain.executor.address)).toBe(hash)
    await send(
      w.chain.c.nodeRegistry
        .connect(w.chain.executor)
        .update(node.peerId.toMultihash().bytes, ZeroHash, 1),
    )
    expect(await client.attestationKeyHash(w.chain.executor.address)).toBe(ZeroHash)
    expect(await client.attestationKeyHash(w.chain.other.address)).toBe(ZeroHash)
  })
})
