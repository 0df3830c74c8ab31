/**
 * A capsule nobody provides: the fetch must end with the typed CAPSULE_FETCH_TIMEOUT error
 * within its idle timeout (not wait forever), with progress on the way (the peers asked), on
 * real libp2p + helia nodes on loopback: the executor's node is connected to a peer that does
 * not hold the CID, so bitswap asks it and gets nothing.
 */
import { createHash } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createDigicapNode, type DigicapNode, heliaCapsuleStore } from '@digicap/p2p'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ExecutorChain } from '../src/chain.ts'
import { type FetchProgress, loadCapsule } from '../src/index.ts'

/** A CIDv1 (raw, sha2-256) of random bytes that no node holds. */
function unprovidedCid(): string {
  const digest = createHash('sha256')
    .update(crypto.getRandomValues(new Uint8Array(32)))
    .digest()
  const bytes = Buffer.concat([Buffer.from([0x01, 0x55, 0x12, 0x20]), digest])
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567'
  let bits = 0
  let value = 0
  let out = 'b'
  for (const b of bytes) {
    value = (value << 8) | b
    bits += 8
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31]
      bits -= 5
    }
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31]
  return out
}

let executorNode: DigicapNode
let otherPeer: DigicapNode
let dir: string

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fetch-timeout-'))
  ;[executorNode, otherPeer] = await Promise.all([createDigicapNode(), createDigicapNode()])
  await executorNode.libp2p.dial(otherPeer.libp2p.getMultiaddrs()[0] as never)
})

afterAll(async () => {
  await Promise.all([executorNode?.stop(), otherPeer?.stop()])
  await rm(dir, { recursive: true, force: true })
})

describe('loadCapsule: a CID nobody provides', () => {
  it('fails with CAPSULE_FETCH_TIMEOUT within the timeout, after asking the connected peer', async () => {
    const seen: FetchProgress[] = []
    const timeoutMs = 1500
    const started = performance.now()
    const err = await loadCapsule({
      cid: unprovidedCid(),
      store: heliaCapsuleStore(executorNode.helia),
      // Never reached: nothing arrives to verify.
      chain: {} as ExecutorChain,
      dir,
      sandboxes: {},
      timeoutMs,
      onProgress: (p) => seen.push(p),
    }).catch((e: unknown) => e)
    const elapsed = performance.now() - started
    expect(err).toMatchObject({
      name: 'CapsuleFetchTimeoutError',
      code: 'CAPSULE_FETCH_TIMEOUT',
      details: { timeoutMs, bytes: 0 },
    })
    const details = (err as { details: { peersAsked: number } }).details
    expect(details.peersAsked).toBeGreaterThanOrEqual(1)
    expect((err as { shortMessage: string }).shortMessage).toBe(
      'No peer provided the capsule within 1.5 s',
    )
    expect((err as { hint?: string }).hint).toMatch(/pi-node serve/)
    expect(seen.some((p) => p.peersAsked >= 1)).toBe(true)
    // Not before the timeout; well before "forever" (generous: the machine is shared).
    expect(elapsed).toBeGreaterThanOrEqual(timeoutMs - 50)
    expect(elapsed).toBeLessThan(timeoutMs + 15_000)
  })

  it('an abort by the caller is not reported as a timeout', async () => {
    const controller = new AbortController()
    setTimeout(() => controller.abort(), 200)
    const err = await loadCapsule({
      cid: unprovidedCid(),
      store: heliaCapsuleStore(executorNode.helia),
      chain: {} as ExecutorChain,
      dir: await mkdtemp(join(dir, 'abort-')),
      sandboxes: {},
      timeoutMs: 60_000,
      signal: controller.signal,
    }).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'CAPSULE_FETCH' })
  })
})
