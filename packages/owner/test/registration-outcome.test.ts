/**
 * The key record is removed after a failed registration only when the chain proves the capsule
 * id is not this owner's (review 120): a lost receipt keeps it; `CapsuleExists` keeps it when
 * the id is the owner's own (a retry) and removes it when a squatter holds the id.
 *
 * Review 119 (attacker): when the registration's outcome is unknown (the RPC lost the receipt,
 * timed out, or went down after `eth_sendRawTransaction`), `sealAndPublish` deletes the key
 * record anyway (`keyRecords.delete`), as if the id had been taken by someone else. The
 * transaction lands: the capsule is registered, under the owner, with no key record. A running
 * `serve` only adopts at start and on announcements (and a failed seal announces nothing), so
 * the owner's capsule is refused to every granted executor until the daemon restarts; the
 * owner, told the seal failed, seals again and pays twice. Keeping the record is safe since
 * ADR 0071 (a record releases only while the on-chain owner is the record's).
 * Real anvil, real solc deployment, the keyguard's real file key store, software sealer.
 */

import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateX25519KeyPair, hexToBytes, privateKeySigner } from '@digicap/capsule-core'
import { connectDigicap, type DigicapAddresses, deployDigicap } from '@digicap/contracts'
import { privateKeyTransactor } from '@digicap/contracts/light'
import { type Anvil, startAnvil } from '@digicap/contracts/testing'
import { createKeyStore } from '@digicap/keyguard'
import { softwareSealer } from '@digicap/keyguard/local'
import { openFsCapsuleImporter } from '@digicap/p2p/import'
import { getBytes, type Wallet } from 'ethers'
import { afterAll, beforeAll, expect, it } from 'vitest'
import {
  sealAndPublish,
  transactorCapsuleRegistrar,
  transactorPolicyDeployer,
} from '../src/index.ts'

const SLOW = 240_000
let anvil: Anvil
let contracts: DigicapAddresses
let dir: string

/** Forwards JSON-RPC to `origin`; once `lose()` is true, every receipt is "not yet" (null). */
async function receiptLosingProxy(origin: string, lose: () => boolean) {
  const server: Server = createServer((req, res) => {
    let body = ''
    req.on('data', (c) => {
      body += c
    })
    req.on('end', async () => {
      const msg = JSON.parse(body) as { id: number; method: string }
      res.setHeader('content-type', 'application/json')
      if (msg.method === 'eth_getTransactionReceipt' && lose()) {
        res.end(JSON.stringify({ jsonrpc: '2.0', id: msg.id, result: null }))
        return
      }
      const answer = await fetch(origin, {
        method: 'POST',
        body,
        headers: { 'content-type': 'application/json' },
      })
      res.end(await answer.text())
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((r) => server.close(r)),
  }
}

beforeAll(async () => {
  anvil = await startAnvil()
  contracts = await deployDigicap(anvil.signers[0] as Wallet)
  dir = await mkdtemp(join(tmpdir(), 'review-119-lost-receipt-'))
}, SLOW)

afterAll(async () => {
  await anvil?.stop()
  if (dir) await rm(dir, { recursive: true, force: true })
})

it(
  'a registration that landed but whose receipt was lost keeps the capsule’s key record',
  async () => {
    let registering = false
    const proxy = await receiptLosingProxy(anvil.rpcUrl, () => registering)
    const owner = anvil.signers[1] as Wallet
    const privateKey = getBytes(owner.privateKey)
    const chainId = Number(anvil.chainId)
    const deployer = privateKeyTransactor({ rpcUrl: anvil.rpcUrl, chainId, privateKey })
    const registrarTx = privateKeyTransactor({
      rpcUrl: proxy.url,
      chainId,
      privateKey,
      receiptTimeoutMs: 3000,
    })
    const input = join(dir, 'plain.bin')
    await writeFile(input, new Uint8Array(4096).fill(9))
    const store = await openFsCapsuleImporter(join(dir, 'ipfs'), { referenceFiles: true })
    const keyStore = await createKeyStore(join(dir, 'keys'))
    let capsuleId = ''
    try {
      await expect(
        sealAndPublish(
          {
            input,
            output: join(dir, 'plain.capsule'),
            policy: 'maxRuns(1)',
            chainId,
            registry: contracts.capsuleRegistry,
            keyguardPeerId: '12D3KooWReview119Keyguard',
            recoveryPublicKey: generateX25519KeyPair().publicKey,
            onProgress: (stage) => {
              if (stage === 'register') registering = true
            },
          },
          {
            signer: privateKeySigner(privateKey),
            wrapper: softwareSealer({
              keyFile: join(dir, 'sealer.pem'),
              allowInsecure: true,
              createIfMissing: true,
            }),
            policies: transactorPolicyDeployer(deployer, { nodeRegistry: contracts.nodeRegistry }),
            registrar: {
              register: (entry) => {
                capsuleId = entry.capsuleId
                return transactorCapsuleRegistrar(registrarTx, { contracts }).register(entry)
              },
            },
            store,
            keyRecords: keyStore,
          },
        ),
      ).rejects.toMatchObject({ code: 'TRANSACTION' })
    } finally {
      await store.close()
      await proxy.close()
    }
    // The chain: registered, this owner's.
    const onChain = await connectDigicap(contracts, anvil.provider).capsuleRegistry.getCapsule(
      capsuleId,
    )
    expect(onChain.owner).toBe(owner.address)
    // The key record: must still be there (it is what the keyguard releases from).
    expect(await keyStore.get(capsuleId)).toBeDefined()
  },
  SLOW,
)

/** One seal of a small file with the transactor registrar, the key store and `capsuleId`. */
async function sealAgain(
  owner: Wallet,
  policy: `0x${string}`,
  capsuleId: string,
  keyStore: Awaited<ReturnType<typeof createKeyStore>>,
  name: string,
) {
  const privateKey = getBytes(owner.privateKey)
  const chainId = Number(anvil.chainId)
  const transactor = privateKeyTransactor({ rpcUrl: anvil.rpcUrl, chainId, privateKey })
  const input = join(dir, `${name}.bin`)
  await writeFile(input, new Uint8Array(512).fill(5))
  const store = await openFsCapsuleImporter(join(dir, `ipfs-${name}`), { referenceFiles: true })
  try {
    return await sealAndPublish(
      {
        input,
        output: join(dir, `${name}.capsule`),
        policy: { address: policy },
        chainId,
        registry: contracts.capsuleRegistry,
        keyguardPeerId: '12D3KooWReview119Keyguard',
        recoveryPublicKey: generateX25519KeyPair().publicKey,
        capsuleId: hexToBytes(capsuleId),
      },
      {
        signer: privateKeySigner(privateKey),
        wrapper: softwareSealer({
          keyFile: join(dir, 'sealer.pem'),
          allowInsecure: true,
          createIfMissing: true,
        }),
        registrar: transactorCapsuleRegistrar(transactor, { contracts }),
        store,
        keyRecords: keyStore,
      },
    )
  } finally {
    await store.close()
  }
}

it(
  'CapsuleExists keeps the record of an id the owner holds (a retry), removes that of an id a squatter holds',
  async () => {
    const registry = connectDigicap(contracts, anvil.provider).capsuleRegistry
    const owner = anvil.signers[1] as Wallet
    const keyStore = await createKeyStore(join(dir, 'keys-exists'))
    // A first seal under a fresh id, registered.
    const first = await sealAgain(
      owner,
      (await solcPolicy()) as `0x${string}`,
      `0x${'a1'.repeat(32)}`,
      keyStore,
      'first',
    )
    expect((await registry.getCapsule(first.capsuleId)).owner).toBe(owner.address)
    // The owner seals again under its own id (a retry after a lost receipt, its records in
    // another store): CapsuleExists, and the record stays (the chain says the id is its own).
    const retryStore = await createKeyStore(join(dir, 'keys-retry'))
    await expect(
      sealAgain(owner, first.policy, first.capsuleId, retryStore, 'retry'),
    ).rejects.toMatchObject({ code: 'CONTRACT_REVERT', errorName: 'CapsuleExists' })
    expect(await retryStore.get(first.capsuleId)).toBeDefined()
    // Another account seals under that id: CapsuleExists, the id is not its own, no record.
    const squatterStore = await createKeyStore(join(dir, 'keys-squatter'))
    await expect(
      sealAgain(anvil.signers[5] as Wallet, first.policy, first.capsuleId, squatterStore, 'squat'),
    ).rejects.toMatchObject({ code: 'CONTRACT_REVERT', errorName: 'CapsuleExists' })
    expect(await squatterStore.get(first.capsuleId)).toBeUndefined()
  },
  SLOW,
)

/** A policy deployed from account 0 (any deployed policy does for a registration). */
async function solcPolicy(): Promise<string> {
  const tx = privateKeyTransactor({
    rpcUrl: anvil.rpcUrl,
    chainId: Number(anvil.chainId),
    privateKey: getBytes((anvil.signers[0] as Wallet).privateKey),
  })
  return (
    await transactorPolicyDeployer(tx, { nodeRegistry: contracts.nodeRegistry }).deploy(
      'maxRuns(2)',
    )
  ).address
}
