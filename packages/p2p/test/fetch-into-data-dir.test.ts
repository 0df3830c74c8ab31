/**
 * A fetch into a node with a data folder (an executor's set-up: blocks and datastore on disk)
 * loses no block message. libp2p wrote the remote peer's record to its datastore on every
 * protocol stream, before the stream's handler ran, and a bitswap message is a stream: with the
 * datastore on disk, a block message piled up in the unread stream past its 4 MiB limit, the
 * stream was aborted and each lost block waited for its resend (71 wants resent for 20 MiB in
 * `bench/fetch.ts`, 100 s instead of 1).
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createDigicapNode, type DigicapNode, heliaCapsuleStore } from '../src/index.ts'

const MiB = 1_048_576

describe('a fetch into a node with a data folder', () => {
  let dir: string
  let a: DigicapNode
  let b: DigicapNode
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'digicap-fetch-data-dir-'))
    // A answers at once (its datastore in memory); B as an executor (a data folder, datastore on
    // disk): the block messages arrive while B is still writing the peer's record
    a = await createDigicapNode({ dataDir: join(dir, 'a'), datastore: 'memory' })
    b = await createDigicapNode({ dataDir: join(dir, 'b') })
    await b.libp2p.dial(multiaddr(a.multiaddrs()[0] as string))
  })
  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()])
    await rm(dir, { recursive: true, force: true })
  })

  it('receives 24 MiB whole with no want sent again (every block message arrives)', async () => {
    const bytes = randomBytes(24 * MiB)
    const cid = await heliaCapsuleStore(a.helia).put(bytes)
    let resent = 0
    let received = 0
    const parts: Buffer[] = []
    for await (const chunk of heliaCapsuleStore(b.helia).get(cid, {
      onNetwork: (n) => {
        resent = n.wantsResent
        received = n.blocksReceived
      },
    })) {
      parts.push(Buffer.from(chunk))
    }
    expect(Buffer.concat(parts).equals(bytes)).toBe(true)
    expect(received).toBeGreaterThanOrEqual(24)
    expect(resent).toBe(0)
  }, 120_000)
})
