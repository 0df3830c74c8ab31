/**
 * The policy a capsule names is the contract the owner created, whatever one RPC says.
 *
 * Review 119 (attacker): `pi-node seal`'s policy deployer (`transactorPolicyDeployer` over
 * `privateKeyTransactor`) takes the new policy's address from the RPC's receipt
 * (`receipt.contractAddress`). One lying RPC (the owner's `rpcUrl`) that forwards every call
 * honestly but rewrites that one receipt field makes the owner sign the header with, and
 * register on the real chain under, a policy contract the attacker chose (here a laxer one it
 * deployed in advance). The keyguard, reading the real chain over an honest quorum, then agrees
 * with the chain and the key record: the capsule opens under the attacker's rule.
 * The nonce lie (review 120): an RPC that answers an old nonce (one the owner created a laxer
 * policy with), swallows the transaction and fakes its receipt makes the computed address that
 * older policy; its code differs from this expression's, and a quorum of the keyguard's RPCs
 * reads it, so the header is never signed.
 * Real anvil, real solc deployment, real on-disk blockstore, software sealer.
 */

import { existsSync } from 'node:fs'
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
import { startNonceLiar } from './helpers/nonce-lying-rpc.ts'

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

describe('a lying RPC does not pick the capsule’s policy', () => {
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
  it(
    'an RPC lying about the nonce (an older laxer policy of the owner) is caught by the code check through a quorum',
    async () => {
      const owner = anvil.signers[2] as Wallet
      const privateKey = getBytes(owner.privateKey)
      const chainId = Number(anvil.chainId)
      const honest = privateKeyTransactor({ rpcUrl: anvil.rpcUrl, chainId, privateKey })
      // The owner's own older, laxer policy, at a nonce the liar will answer again.
      const oldNonce = await anvil.provider.getTransactionCount(owner.address)
      const older = await transactorPolicyDeployer(honest, {
        nodeRegistry: contracts.nodeRegistry,
      }).deploy('maxRuns(1000000)')
      expect(older.address).toBe(getCreateAddress({ from: owner.address, nonce: oldNonce }))
      // The code this seal's expression has (someone else's deployment of it), which the liar
      // also answers for the older address: it lies about everything it is asked.
      const same = await solcPolicyDeployer(anvil.signers[4] as Wallet, {
        nodeRegistry: contracts.nodeRegistry,
      }).deploy('maxRuns(1)')
      const wantedCode = await anvil.provider.getCode(same.address)
      const liar = await startNonceLiar(anvil.rpcUrl, {
        nonce: oldNonce,
        receiptAddress: older.address,
        codeAt: { address: older.address, code: wantedCode },
      })
      const liarUrl = liar.url
      const transactor = privateKeyTransactor({ rpcUrl: liarUrl, chainId, privateKey })
      const input = join(dir, 'nonce.bin')
      await writeFile(input, new Uint8Array(4096).fill(8))
      const store = await openFsCapsuleImporter(join(dir, 'ipfs-nonce'), { referenceFiles: true })
      const output = join(dir, 'nonce.capsule')
      let registered = false
      try {
        await expect(
          sealAndPublish(
            {
              input,
              output,
              policy: 'maxRuns(1)',
              chainId,
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
              // The node's RPCs: the liar (its rpcUrl) and two honest ones, a majority quorum.
              policies: transactorPolicyDeployer(transactor, {
                nodeRegistry: contracts.nodeRegistry,
                rpcUrls: [liarUrl, anvil.rpcUrl, anvil.rpcUrl],
                quorum: 2,
              }),
              registrar: {
                register: async () => {
                  registered = true
                  return { transactionHash: '0x' }
                },
              },
              store,
            },
          ),
        ).rejects.toMatchObject({ code: 'POLICY_CODE' })
      } finally {
        await store.close()
        await liar.close()
      }
      expect(liar.swallowed.size).toBe(1)
      expect(registered).toBe(false)
      expect(existsSync(output)).toBe(false)
    },
    SLOW,
  )
})
