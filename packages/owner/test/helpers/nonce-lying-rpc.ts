/**
 * A JSON-RPC server in front of a real node that lies about the owner's nonce (fault injection
 * for the policy address checks: review 120, ADR 0091). It answers `nonce` to
 * `eth_getTransactionCount` until it has swallowed one raw transaction (never sent on, its hash
 * answered as if it were), fakes that transaction's receipt, and can answer another contract's
 * code at one address; everything else it forwards, and after the swallowed transaction it is
 * honest about the nonce again, so that the owner's next transaction (a registration, an
 * `updatePolicy`) lands on the real chain.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Transaction } from 'ethers'

export interface NonceLiarInit {
  /** The nonce it answers (one the owner already created an older policy with). */
  nonce: number
  /** The contract the swallowed transaction's receipt names (e.g. that older policy). */
  receiptAddress?: string
  /** Code it answers for one address (e.g. the expected policy's code at the older one). */
  codeAt?: { address: string; code: string }
}

export interface NonceLiar {
  url: string
  /** The raw transactions it swallowed: hash → sender. */
  swallowed: ReadonlyMap<string, string>
  close(): Promise<void>
}

export async function startNonceLiar(upstream: string, init: NonceLiarInit): Promise<NonceLiar> {
  /** Swallowed transactions by hash: their sender, for the fake receipt. */
  const swallowed = new Map<string, string>()
  const server = createServer((req, res) => {
    let body = ''
    req.on('data', (c) => {
      body += c
    })
    req.on('end', async () => {
      const msg = JSON.parse(body) as { id: number; method: string; params: unknown[] }
      const reply = (result: unknown) =>
        res.end(JSON.stringify({ jsonrpc: '2.0', id: msg.id, result }))
      res.setHeader('content-type', 'application/json')
      if (swallowed.size === 0 && msg.method === 'eth_getTransactionCount') {
        return reply(`0x${init.nonce.toString(16)}`)
      }
      if (swallowed.size === 0 && msg.method === 'eth_sendRawTransaction') {
        const tx = Transaction.from(msg.params[0] as string)
        swallowed.set(tx.hash as string, tx.from as string)
        return reply(tx.hash)
      }
      const from =
        msg.method === 'eth_getTransactionReceipt' && swallowed.get(msg.params[0] as string)
      if (from) {
        // Whole enough for ethers' receipt formatting as well as for plain JSON-RPC readers.
        return reply({
          transactionHash: msg.params[0],
          transactionIndex: '0x0',
          blockHash: `0x${'11'.repeat(32)}`,
          blockNumber: '0x1',
          from,
          to: null,
          cumulativeGasUsed: '0x5208',
          gasUsed: '0x5208',
          effectiveGasPrice: '0x1',
          contractAddress: init.receiptAddress ?? null,
          logs: [],
          logsBloom: `0x${'00'.repeat(256)}`,
          status: '0x1',
          type: '0x2',
        })
      }
      if (
        msg.method === 'eth_getCode' &&
        init.codeAt !== undefined &&
        String(msg.params[0]).toLowerCase() === init.codeAt.address.toLowerCase()
      ) {
        return reply(init.codeAt.code)
      }
      const answer = await fetch(upstream, {
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
    swallowed,
    close: () => new Promise((r) => server.close(() => r())),
  }
}
