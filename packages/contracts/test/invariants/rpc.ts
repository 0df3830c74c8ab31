/**
 * A bare JSON-RPC client for the invariant runner: one HTTP request per batch of calls (the
 * invariant reads of a step go out together), and transactions sent from anvil's unlocked
 * accounts with a fixed gas limit, so that a call expected to revert is mined (status 0) rather
 * than refused by gas estimation.
 */
import { toQuantity } from 'ethers'

export interface RpcCall {
  method: string
  params: unknown[]
}

export interface Mined {
  ok: boolean
  logs: { address: string; topics: string[]; data: string }[]
  blockNumber: number
}

export interface BatchRpc {
  batch(calls: readonly RpcCall[]): Promise<unknown[]>
  call<T = unknown>(method: string, params: unknown[]): Promise<T>
  /** Sends and mines (automine) one transaction; resolves with its receipt. */
  send(from: string, to: string, data: string, value?: bigint): Promise<Mined>
}

const GAS = 2_000_000

export function createBatchRpc(url: string): BatchRpc {
  let nextId = 1
  async function batch(calls: readonly RpcCall[]): Promise<unknown[]> {
    const body = calls.map((c) => ({ jsonrpc: '2.0', id: nextId++, ...c }))
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    })
    const out = (await res.json()) as {
      id: number
      result?: unknown
      error?: { message: string }
    }[]
    const byId = new Map(out.map((o) => [o.id, o]))
    return body.map((b) => {
      const o = byId.get(b.id)
      if (!o) throw new Error(`${b.method}: no answer`)
      if (o.error) throw new Error(`${b.method}: ${o.error.message}`)
      return o.result
    })
  }
  async function call<T>(method: string, params: unknown[]): Promise<T> {
    return (await batch([{ method, params }]))[0] as T
  }
  return {
    batch,
    call,
    async send(from, to, data, value = 0n) {
      const hash = await call<string>('eth_sendTransaction', [
        { from, to, data, value: toQuantity(value), gas: toQuantity(GAS) },
      ])
      type Receipt = { status: string; logs: Mined['logs']; blockNumber: string }
      // Automine mines before answering, but the receipt may lag the answer by a moment.
      let r: Receipt | null = null
      for (let i = 0; r === null; i++) {
        if (i === 200) throw new Error(`no receipt for ${hash}`)
        if (i > 0) await new Promise((res) => setTimeout(res, 5))
        r = await call<Receipt | null>('eth_getTransactionReceipt', [hash])
      }
      return { ok: r.status === '0x1', logs: r.logs, blockNumber: Number(r.blockNumber) }
    },
  }
}
