/**
 * `@digicap/contracts/light`: the seal's transactions without ethers. The call data and the
 * signed transaction are checked byte for byte against ethers (the library the rest of the
 * package uses), and the transactor deploys, registers and meets reverts on a real anvil.
 */
import { execFileSync } from 'node:child_process'
import { createServer } from 'node:http'
import { fileURLToPath } from 'node:url'
import { hexToBytes } from '@digicap/capsule-core'
import {
  AbiCoder,
  ContractFactory,
  Transaction as EthersTransaction,
  formatEther as ethersFormatEther,
  parseEther as ethersParseEther,
  getBytes,
  getCreateAddress,
  hexlify,
  Interface,
  randomBytes,
  Wallet,
} from 'ethers'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { compilePolicy, verifyPolicyBytecode } from '../src/compiler/policy.ts'
import { ContractRevertError, TransactionError } from '../src/errors.ts'
import { capsuleRegistryAbi } from '../src/generated/artifacts.ts'
import { abiEncodeParams } from '../src/light/abi-encode.ts'
import {
  policyCreationData,
  REGISTER_CAPSULE_SIGNATURE,
  registerCapsuleCallData,
} from '../src/light/calls.ts'
import { createAddress } from '../src/light/create-address.ts'
import { privateKeyTransactor } from '../src/light/transactor.ts'
import { formatEther, parseEther } from '../src/policy/ether.ts'
import { maxRuns } from '../src/policy/expression.ts'
import { generatePolicySource } from '../src/policy/solidity.ts'
import { CID, useWorld, type World } from './helpers.ts'

let w: World
useWorld((world) => {
  w = world
})

const registry = new Interface(capsuleRegistryAbi as unknown as Record<string, unknown>[])
const keyOf = (wallet: Wallet) => getBytes(wallet.privateKey)
const transactorOf = (wallet: Wallet) =>
  privateKeyTransactor({ rpcUrl: w.anvil.rpcUrl, chainId: 31337, privateKey: keyOf(wallet) })
const registration = (policy: string) => ({
  capsuleId: randomBytes(32),
  policy,
  cid: CID,
  plaintextCommitment: randomBytes(32),
  keyguardPeerId: new TextEncoder().encode('12D3KooWLightTestPeer'),
  keyguardKeyId: randomBytes(32),
})

/** A JSON-RPC pass-through to `origin` that keeps the last raw transaction sent through it. */
async function recordingProxy(origin: string) {
  let raw = ''
  const proxy = createServer((req, res) => {
    let body = ''
    req.on('data', (c) => {
      body += c
    })
    req.on('end', async () => {
      const msg = JSON.parse(body) as { method: string; params: unknown[] }
      if (msg.method === 'eth_sendRawTransaction') raw = msg.params[0] as string
      const answer = await fetch(origin, {
        method: 'POST',
        body,
        headers: { 'content-type': 'application/json' },
      })
      res.setHeader('content-type', 'application/json')
      res.end(await answer.text())
    })
  })
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r))
  return {
    url: `http://127.0.0.1:${(proxy.address() as { port: number }).port}`,
    sent: () => raw,
    close: () => new Promise((r) => proxy.close(r)),
  }
}

describe('call data, byte for byte as ethers encodes it', () => {
  it('register: the selector is the ABI function, the arguments any lengths', () => {
    expect(registry.getFunction('register')?.format('sighash')).toBe(REGISTER_CAPSULE_SIGNATURE)
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.string({ maxLength: 200 }),
        fc.uint8Array({ maxLength: 100 }),
        (id, cid, peer) => {
          const call = {
            capsuleId: id,
            policy: w.addresses.accessController,
            cid,
            plaintextCommitment: id.slice().reverse(),
            keyguardPeerId: peer,
            keyguardKeyId: id,
          }
          const ours = hexlify(registerCapsuleCallData(call))
          const theirs = registry.encodeFunctionData('register', [
            id,
            call.policy,
            cid,
            call.plaintextCommitment,
            peer,
            id,
          ])
          expect(ours).toBe(theirs)
        },
      ),
      { numRuns: 200 },
    )
  })

  it('uint256 and empty dynamic values encode as ethers does', () => {
    const ours = abiEncodeParams([
      { type: 'uint256', value: 2n ** 256n - 1n },
      { type: 'bytes', value: new Uint8Array(0) },
      { type: 'string', value: '' },
      { type: 'uint256', value: 0n },
    ])
    const theirs = AbiCoder.defaultAbiCoder().encode(
      ['uint256', 'bytes', 'string', 'uint256'],
      [2n ** 256n - 1n, '0x', '', 0n],
    )
    expect(hexlify(ours)).toBe(theirs)
    expect(() => abiEncodeParams([{ type: 'bytes32', value: new Uint8Array(31) }])).toThrow(
      RangeError,
    )
  })

  it("a policy's creation data is ethers' deploy transaction data", async () => {
    const compiled = compilePolicy(generatePolicySource(maxRuns(3)))
    const factory = new ContractFactory(
      compiled.abi as Record<string, unknown>[],
      compiled.bytecode,
    )
    const { data } = await factory.getDeployTransaction(w.addresses.nodeRegistry)
    expect(hexlify(policyCreationData(compiled.bytecode, w.addresses.nodeRegistry))).toBe(data)
  })

  it('a creation address is the one ethers computes, for any sender and nonce', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 20, maxLength: 20 }),
        fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
        (from, nonce) => {
          const sender = hexlify(from)
          expect(createAddress(sender, nonce)).toBe(getCreateAddress({ from: sender, nonce }))
        },
      ),
      { numRuns: 300 },
    )
    for (const nonce of [0n, 1n, 127n, 128n, 255n, 256n, 2n ** 32n]) {
      expect(createAddress(w.owner.address, nonce)).toBe(
        getCreateAddress({ from: w.owner.address, nonce }),
      )
    }
  })

  it('fee amounts: parse and format as ethers', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 2n ** 128n }), (wei) => {
        const text = ethersFormatEther(wei)
        expect(formatEther(wei)).toBe(text)
        expect(parseEther(text)).toBe(ethersParseEther(text))
      }),
      { numRuns: 500 },
    )
    expect(parseEther('0.01')).toBe(10n ** 16n)
    expect(formatEther(10n ** 18n)).toBe('1.0')
  })
})

describe('privateKeyTransactor on anvil', () => {
  it('deploys a policy and registers a capsule: the chain holds both', async () => {
    const tx = transactorOf(w.owner)
    expect(tx.address).toBe(w.owner.address)
    const compiled = compilePolicy(generatePolicySource(maxRuns(3)))
    const created = await tx.send({
      data: policyCreationData(compiled.bytecode, w.addresses.nodeRegistry),
    })
    expect(created.contractAddress).toBeDefined()
    const policy = created.contractAddress as string
    // The nonce it signed gives the same address, without the receipt.
    expect(createAddress(tx.address, created.nonce)).toBe(policy)
    // The code on chain is the compiled policy's, with the NodeRegistry as its immutable.
    await verifyPolicyBytecode(w.anvil.provider, policy, compiled)

    const entry = registration(policy)
    const mined = await tx.send({
      to: w.addresses.capsuleRegistry,
      data: registerCapsuleCallData(entry),
    })
    expect(mined.gasUsed).toBeGreaterThan(21_000n)
    const onChain = await w.c.capsuleRegistry.getCapsule(entry.capsuleId)
    expect(onChain.owner).toBe(w.owner.address)
    expect(onChain.policy).toBe(policy)
    expect(onChain.cid).toBe(CID)
    const receipt = await w.anvil.provider.getTransactionReceipt(mined.hash)
    expect(receipt?.from).toBe(w.owner.address)
  })

  it('signs the same bytes ethers signs for the same transaction (RFC 6979)', async () => {
    const proxy = await recordingProxy(w.anvil.rpcUrl)
    const compiled = compilePolicy(generatePolicySource(maxRuns(2)))
    const creation = policyCreationData(compiled.bytecode, w.addresses.nodeRegistry)
    try {
      await privateKeyTransactor({
        rpcUrl: proxy.url,
        chainId: 31337,
        privateKey: keyOf(w.other),
      }).send({ data: creation })
    } finally {
      await proxy.close()
    }
    const raw = proxy.sent()
    const ours = EthersTransaction.from(raw)
    expect(ours.from).toBe(w.other.address)
    expect(ours.chainId).toBe(31337n)
    expect(ours.type).toBe(2)
    expect(ours.to).toBeNull()
    expect(ours.data).toBe(hexlify(creation))
    const unsigned = EthersTransaction.from({ ...ours.toJSON(), signature: null })
    expect(raw).toBe(await new Wallet(w.other.privateKey).signTransaction(unsigned))
  })

  it('a revert is a ContractRevertError naming the custom error and its arguments', async () => {
    const tx = transactorOf(w.owner)
    const compiled = compilePolicy(generatePolicySource(maxRuns(3)))
    const { contractAddress } = await tx.send({
      data: policyCreationData(compiled.bytecode, w.addresses.nodeRegistry),
    })
    const entry = registration(contractAddress as string)
    await tx.send({ to: w.addresses.capsuleRegistry, data: registerCapsuleCallData(entry) })
    const again = await tx
      .send({ to: w.addresses.capsuleRegistry, data: registerCapsuleCallData(entry) })
      .catch((e: unknown) => e)
    expect(again).toBeInstanceOf(ContractRevertError)
    expect((again as ContractRevertError).errorName).toBe('CapsuleExists')
    expect((again as ContractRevertError).args[0]).toBe(hexlify(entry.capsuleId))
    // A policy address that is no contract: the registry's own error.
    const bad = await tx
      .send({
        to: w.addresses.capsuleRegistry,
        data: registerCapsuleCallData(registration(w.other.address)),
      })
      .catch((e: unknown) => e)
    expect(bad).toBeInstanceOf(ContractRevertError)
    expect((bad as ContractRevertError).errorName).toBeDefined()
  })

  it('a refused or unanswered request is a TransactionError, never a hang', async () => {
    // A key with no funds: the RPC refuses the transaction (insufficient funds).
    const poor = privateKeyTransactor({
      rpcUrl: w.anvil.rpcUrl,
      chainId: 31337,
      privateKey: hexToBytes(Wallet.createRandom().privateKey),
    })
    const refused = await poor
      .send({ to: w.addresses.capsuleRegistry, data: new Uint8Array(0), value: 1n })
      .catch((e: unknown) => e)
    expect(refused).toBeInstanceOf(Error)
    expect(['TRANSACTION', 'CONTRACT_REVERT']).toContain((refused as TransactionError).code)
    // The wrong chain id: anvil refuses the signature's chain.
    const wrongChain = privateKeyTransactor({
      rpcUrl: w.anvil.rpcUrl,
      chainId: 1,
      privateKey: keyOf(w.owner),
    })
    const err = await wrongChain
      .send({ to: w.other.address, data: new Uint8Array(0), value: 1n })
      .catch((e: unknown) => e)
    expect(err).toBeInstanceOf(TransactionError)
    // Nothing listening: a typed error within the deadline.
    const dead = privateKeyTransactor({
      rpcUrl: 'http://127.0.0.1:9',
      chainId: 31337,
      privateKey: keyOf(w.owner),
      rpcTimeoutMs: 500,
    })
    await expect(dead.send({ to: w.other.address, data: new Uint8Array(0) })).rejects.toMatchObject(
      {
        code: expect.stringMatching(/CHAIN_READ|TRANSACTION/),
      },
    )
  })
})

describe('the light entry', () => {
  it('loads no ethers module', () => {
    const light = fileURLToPath(new URL('../dist/light.js', import.meta.url))
    const script = `
      import { registerHooks } from 'node:module'
      const seen = []
      registerHooks({ load(url, ctx, next) { seen.push(url); return next(url, ctx) } })
      const m = await import(${JSON.stringify(light)})
      m.parsePolicyExpression("all(minReputation(50), fee('0.01'), allowlist(['0x5FbDB2315678afecb367f032d93F642f64180aa3']))")
      console.log(JSON.stringify(seen))`
    const seen = JSON.parse(
      execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }),
    ) as string[]
    expect(seen.some((u) => u.includes('/dist/light.js'))).toBe(true)
    expect(seen.filter((u) => /\/ethers\//.test(u))).toEqual([])
  })
})
