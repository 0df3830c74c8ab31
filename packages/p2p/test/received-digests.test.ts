/**
 * One SHA-256 per block received (ADR 0057): bitswap's digest of the received bytes is the one
 * helia's check compares with the CID asked for. Real helia + libp2p nodes on loopback; the
 * hashes are counted at `node:crypto` (multiformats' SHA-256 is `createHash('sha256')` there).
 * Before, every block was hashed twice (bitswap to name it, helia to check it). A block that
 * does not hash to the CID asked for is still refused: `have-first.test.ts` (a forging peer).
 */
import crypto, { randomBytes } from 'node:crypto'
import { sha256 } from 'multiformats/hashes/sha2'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createReceivedDigests } from '../src/fetch/received-digests.ts'
import { type DigicapNode, heliaCapsuleStore } from '../src/index.ts'
import { connectedPair, stopNodes } from './connected-pair.ts'

const MiB = 1_048_576

/** SHA-256 digests computed by this process while `run` runs. */
async function countHashes(run: () => Promise<void>): Promise<number> {
  const own = crypto.createHash
  let count = 0
  crypto.createHash = ((algorithm: string, options?: crypto.HashOptions) => {
    if (algorithm === 'sha256') count++
    return own(algorithm, options)
  }) as typeof crypto.createHash
  try {
    await run()
  } finally {
    crypto.createHash = own
  }
  return count
}

describe('a block received is hashed once', () => {
  let a: DigicapNode
  let b: DigicapNode
  beforeAll(async () => {
    ;[a, b] = await connectedPair()
  })
  afterAll(async () => {
    await stopNodes(a, b)
  })

  it('a 12-block fetch computes one SHA-256 per block (two before)', async () => {
    const leaves = 12
    const bytes = randomBytes(leaves * MiB)
    const cid = await heliaCapsuleStore(a.helia).put(bytes)
    const parts: Uint8Array[] = []
    const hashes = await countHashes(async () => {
      for await (const chunk of heliaCapsuleStore(b.helia).get(cid)) parts.push(chunk)
    })
    expect(Buffer.concat(parts).equals(bytes)).toBe(true)
    // 12 leaves and the root; a small slack for a block received twice (before: 26)
    expect(hashes).toBeGreaterThanOrEqual(leaves + 1)
    expect(hashes).toBeLessThanOrEqual(leaves + 3)
  }, 60_000)

  it('the hasher computes the digest of bytes it has not seen from bitswap', async () => {
    const { hasher } = createReceivedDigests()
    const data = new Uint8Array(randomBytes(1000))
    const digest = await hasher.digest(data)
    expect(digest.bytes).toEqual((await sha256.digest(data)).bytes)
  })
})
