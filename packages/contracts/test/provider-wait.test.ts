/**
 * `tx.wait()` through `createProvider` ends when the receipt exists, whether or not another
 * block follows. The fault is injected by a JSON-RPC proxy in front of a real anvil that answers
 * `null` to the first asks for a receipt, as anvil does when it answers `eth_sendRawTransaction`
 * and mines a moment later: the transaction is mined between ethers' asks.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { JsonRpcProvider, Network, type TransactionResponse, Wallet } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Anvil, startAnvil } from '../src/anvil.ts'
import { createProvider } from '../src/provider.ts'

/** Asks for one receipt answered `null` before the truth: ethers 6.17's wait() asks twice. */
const LIES = 2

let anvil: Anvil
let proxy: Server
let proxyUrl: string
/** Per transaction hash: how many receipt asks the proxy has seen. */
const asks = new Map<string, number>()
/** How many of the next `eth_blockNumber` calls the proxy fails (an RPC blip). */
let failBlockNumbers = 0

beforeAll(async () => {
  anvil = await startAnvil({ accounts: 3 })
  proxy = createServer((req, res) => {
    let body = ''
    req.on('data', (d) => {
      body += d
    })
    req.on('end', async () => {
      const call = JSON.parse(body) as { id: number; method: string; params: unknown[] }
      if (call.method === 'eth_blockNumber' && failBlockNumbers > 0) {
        failBlockNumbers--
        res.statusCode = 503
        res.end('busy')
        return
      }
      if (call.method === 'eth_getTransactionReceipt') {
        const hash = String(call.params[0]).toLowerCase()
        const n = (asks.get(hash) ?? 0) + 1
        asks.set(hash, n)
        if (n <= LIES) {
          res.setHeader('content-type', 'application/json')
          res.end(JSON.stringify({ jsonrpc: '2.0', id: call.id, result: null }))
          return
        }
      }
      const upstream = await fetch(anvil.rpcUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      })
      res.setHeader('content-type', 'application/json')
      res.end(await upstream.text())
    })
  })
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r))
  proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`
}, 60_000)

afterAll(async () => {
  await new Promise((r) => proxy?.close(r))
  await anvil?.stop()
})

/** ethers' own provider with createProvider's options, for the control. */
function ethersProvider(): JsonRpcProvider {
  const network = Network.from(anvil.chainId)
  return new JsonRpcProvider(proxyUrl, network, {
    staticNetwork: network,
    cacheTimeout: -1,
    pollingInterval: 100,
    batchMaxCount: 1,
  })
}

/** What `p` has done after `ms`: its value, its error, or 'pending'. */
async function after<T>(p: Promise<T>, ms: number): Promise<T | 'pending'> {
  return Promise.race([p, new Promise<'pending'>((r) => setTimeout(() => r('pending'), ms))])
}

const send = (provider: JsonRpcProvider, signer: number): Promise<TransactionResponse> =>
  new Wallet((anvil.signers[signer] as Wallet).privateKey, provider).sendTransaction({
    to: anvil.accounts[2] as string,
    value: 1n,
  })

describe('tx.wait() when the transaction is mined between the asks', () => {
  it("ethers' own watcher waits for a next block; createProvider's returns once the receipt exists", async () => {
    // Control: the proxy reproduces the hang (ethers waits for a block that never comes).
    const plain = ethersProvider()
    const stuck = await send(plain, 0)
    const stuckWait = stuck.wait()
    expect(await after(stuckWait, 1500)).toBe('pending')
    expect(asks.get(stuck.hash.toLowerCase())).toBe(LIES)
    await anvil.provider.send('evm_mine', [])
    expect((await stuckWait)?.hash).toBe(stuck.hash)
    plain.destroy()

    // The fix: no block follows this transaction, and the wait ends.
    const ours = createProvider(proxyUrl, anvil.chainId)
    const height = await anvil.provider.getBlockNumber()
    const tx = await send(ours, 1)
    const receipt = await after(tx.wait(), 5000)
    expect(receipt).not.toBe('pending')
    expect(receipt === 'pending' ? undefined : receipt?.status).toBe(1)
    expect(asks.get(tx.hash.toLowerCase())).toBeGreaterThan(LIES)
    expect(await anvil.provider.getBlockNumber()).toBe(height + 1)
    ours.destroy()
  }, 60_000)

  it('hands the receipt again only as blocks come, survives a failing RPC, stops asking once done', async () => {
    const ours = createProvider(proxyUrl, anvil.chainId)
    const tx = await send(ours, 1)
    const thrice = tx.wait(3)
    expect(await after(thrice, 600)).toBe('pending')
    // Seen once: no more receipt asks while the chain stands still, only its height.
    const seen = asks.get(tx.hash.toLowerCase()) as number
    expect(seen).toBeGreaterThan(LIES)
    // The height asks fail for a while: caught, asked again (an uncaught one would end the run).
    failBlockNumbers = 5
    await new Promise((r) => setTimeout(r, 800))
    expect(asks.get(tx.hash.toLowerCase())).toBe(seen)
    expect(failBlockNumbers).toBe(0)
    await anvil.provider.send('evm_mine', [])
    expect(await after(thrice, 600)).toBe('pending')
    await anvil.provider.send('evm_mine', [])
    expect((await thrice)?.hash).toBe(tx.hash)
    const asked = asks.get(tx.hash.toLowerCase()) as number
    expect(asked).toBe(seen + 2)
    await anvil.provider.send('evm_mine', [])
    await new Promise((r) => setTimeout(r, 600))
    expect(asks.get(tx.hash.toLowerCase())).toBe(asked)
    ours.destroy()
  }, 60_000)

  it('a reverted transaction still rejects the wait (CALL_EXCEPTION)', async () => {
    const ours = createProvider(proxyUrl, anvil.chainId)
    const wallet = new Wallet((anvil.signers[1] as Wallet).privateKey, ours)
    // A contract whose code is REVERT (0xfd) at deployment; gas given so no estimate refuses it.
    const tx = await wallet.sendTransaction({ data: '0x60006000fd', gasLimit: 100_000n })
    await expect(tx.wait()).rejects.toMatchObject({ code: 'CALL_EXCEPTION' })
    ours.destroy()
  }, 60_000)
})
