/**
 * Review 119 (attacker): `pi-node seal`'s policy deployer (`transactorPolicyDeployer` over
 * `privateKeyTransactor`) takes the new policy's address from the RPC's receipt
 * (`receipt.contractAddress`). One lying RPC (the owner's `rpcUrl`) that forwards every call
 * honestly but rewrites that one receipt field makes the owner sign the header with, and
 * register on the real chain under, a policy contract the attacker chose (here a laxer one it
 * deployed in advance). The keyguard, reading the real chain over an honest quorum, then agrees
 * with the chain and the key record: the capsule opens under the attacker's rule.
 * Real anvil, real solc deployment, real on-disk blockstore, software sealer.
 */

import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateX25519KeyPair, privateKeySigner } from '@digicap/capsule-core'
import { connectDigicap, type DigicapAddresses, deployDigicap } from '@digicap/contracts'
import { privateKeyTransactor } from '@digicap/contracts/light'
import { type Anvil, startAnvil } from '@digicap/contracts/testing'
import { softwareSealer } from '@digicap/keyguard/local'
import { openFsCapsuleImporter } from '@digicap/p2p/import'
import { getBytes, getCreateAddress, type Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  sealAndPublish,
  solcPolicyDeployer,
  transactorCapsuleRegistrar,
  transactorPolicyDeployer,
} from '../src/index.ts'

const SLOW = 240_000

/** Forwards JSON-RPC to `origin`; a creation's receipt names `fake()` as the contract made. */
async function receiptLyingProxy(origin: string, fake: () => string | undefined) {
  const server: Server = createServer((req, res) => {
    let body = ''
    req.on('data', (c) => {
      body += c
    })
    req.on('end', async () => {
      const msg = JSON.parse(body) as { method: string }
      const answer = (await (
        await fetch(origin, {
          method: 'POST',
          body,
          headers: { 'content-type': 'application/json' },
        })
      ).json()) as { result?: { contractAddress?: string | null } | null }
      const lie = fake()
      if (
        msg.method === 'eth_getTransactionReceipt' &&
        lie !== undefined &&
        typeof answer.result?.contractAddress === 'string'
      ) {
        answer.result.contractAddress = lie
      }
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify(answer))
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((r) => server.close(r)),
  }
}

describe('review 119: a lying RPC receipt picks the capsule’s policy', () => {
  let anvil: Anvil
  let contracts: DigicapAddresses
  let dir: string
  let attackerPolicy: string | undefined

  beforeAll(async () => {
    anvil = await startAnvil()
    contracts = await deployDigicap(anvil.signers[0] as Wallet)
    dir = await mkdtemp(join(tmpdir(), 'review-119-receipt-'))
    // The attacker deploys a lax policy of its own, ahead of time, from its own account.
    const lax = await solcPolicyDeployer(anvil.signers[3] as Wallet, {
      nodeRegistry: contracts.nodeRegistry,
    }).deploy('maxRuns(1000000)')
    attackerPolicy = lax.address
  }, SLOW)

  afterAll(async () => {
    await anvil?.stop()
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  it(
    'pi-node’s deployer: the capsule is registered under the contract the owner created, not the one a receipt names',
    async () => {
      const proxy = await receiptLyingProxy(anvil.rpcUrl, () => attackerPolicy)
      const owner = anvil.signers[1] as Wallet
      const privateKey = getBytes(owner.privateKey)
      const transactor = privateKeyTransactor({
        rpcUrl: proxy.url,
        chainId: Number(anvil.chainId),
        privateKey,
      })
      const input = join(dir, 'plain.bin')
      await writeFile(input, new Uint8Array(4096).fill(7))
      const store = await openFsCapsuleImporter(join(dir, 'ipfs'), { referenceFiles: true })
      const nonce = await anvil.provider.getTransactionCount(owner.address)
      try {
        const r = await sealAndPublish(
          {
            input,
            output: join(dir, 'plain.capsule'),
            policy: 'maxRuns(1)',
            chainId: Number(anvil.chainId),
            registry: contracts.capsuleRegistry,
            keyguardPeerId: '12D3KooWReview119Keyguard',
            recoveryPublicKey: generateX25519KeyPair().publicKey,
          },
          {
            signer: privateKeySigner(privateKey),
            wrapper: softwareSealer({
              keyFile: join(dir, 'sealer.pem'),
              allowInsecure: true,
              createIfMissing: true,
            }),
            policies: transactorPolicyDeployer(transactor, {
              nodeRegistry: contracts.nodeRegistry,
            }),
            registrar: transactorCapsuleRegistrar(transactor, { contracts }),
            store,
          },
        )
        // What the owner's own deployment created (its first transaction of this seal).
        const created = getCreateAddress({ from: owner.address, nonce })
        const onChain = await connectDigicap(contracts, anvil.provider).capsuleRegistry.getCapsule(
          r.capsuleId,
        )
        expect(onChain.policy).not.toBe(attackerPolicy)
        expect(onChain.policy).toBe(created)
        expect(r.policy).toBe(created)
      } finally {
        await store.close()
        await proxy.close()
      }
    },
    SLOW,
  )
})
