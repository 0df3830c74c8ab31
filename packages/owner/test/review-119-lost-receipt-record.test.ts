/**
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
import { generateX25519KeyPair, privateKeySigner } from '@digicap/capsule-core'
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
