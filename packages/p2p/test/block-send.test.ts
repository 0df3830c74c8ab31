/**
 * Block messages are encoded around the blocks' own bytes (ADR 0050): bitswap's own decoder
 * reads back exactly the message given (wants, blocks, presences, split at the size limit), and
 * the blocks' bytes are the parts sent, not copies. Between real nodes, every fetch test runs
 * through it (the serving side sends every block this way).
 */
import { randomBytes } from 'node:crypto'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { beforeAll, describe, expect, it } from 'vitest'
import { type EncodableMessage, encodeMessages } from '../src/fetch/block-send/encode.ts'

interface Decoded {
  wantlist?: {
    entries: {
      cid: Uint8Array
      priority: number
      cancel: boolean
      wantType: string
      sendDontHave: boolean
    }[]
    full: boolean
  }
  blocks: { prefix: Uint8Array; data: Uint8Array }[]
  blockPresences: { cid: Uint8Array; type: string }[]
}
let decode: (bytes: Uint8Array) => Decoded

beforeAll(async () => {
  // bitswap's own protobuf decoder (not exported by its package: loaded by path, as helia is)
  const entry = createRequire(import.meta.url).resolve('@helia/bitswap')
  const pb = await import(pathToFileURL(join(dirname(entry), 'pb', 'message.js')).href)
  decode = (bytes) => pb.BitswapMessage.decode(bytes)
})

const MiB = 1_048_576

async function block(size: number) {
  const data = new Uint8Array(randomBytes(size))
  const cid = CID.createV1(0x55, await sha256.digest(data))
  // the prefix bitswap's serving side queues: version, codec, hash code, digest length
  return { cid, block: { prefix: Uint8Array.of(1, 0x55, 0x12, 32), data } }
}

/** The length-prefixed messages as separate byte arrays. */
function unframe(encoded: ReturnType<typeof encodeMessages>): Uint8Array[] {
  return encoded.map(({ parts, byteLength }) => {
    const all = Buffer.concat(parts)
    expect(all.byteLength).toBe(byteLength)
    let at = 0
    let length = 0
    let shift = 0
    for (;;) {
      const b = all[at++] as number
      length += (b & 0x7f) * 2 ** shift
      shift += 7
      if (b < 0x80) break
    }
    expect(all.byteLength - at).toBe(length)
    return all.subarray(at)
  })
}

describe('block messages encoded without copying the blocks', () => {
  it('bitswap decodes wants, blocks and presences as given, and the blocks are the bytes sent', async () => {
    const [a, b] = await Promise.all([block(MiB), block(1000)])
    const message: EncodableMessage = {
      full: false,
      wantlist: new Map([
        [
          'w',
          {
            cid: a.cid.bytes,
            priority: 1,
            wantType: 'WantHave',
            cancel: false,
            sendDontHave: true,
          },
        ],
        [
          'c',
          {
            cid: b.cid.bytes,
            priority: 300,
            wantType: 'WantBlock',
            cancel: true,
            sendDontHave: false,
          },
        ],
      ]),
      blocks: new Map([
        ['a', a.block],
        ['b', b.block],
      ]),
      blockPresences: new Map([
        ['p', { cid: a.cid.bytes, type: 'HaveBlock' as const }],
        ['q', { cid: b.cid.bytes, type: 'DoNotHaveBlock' as const }],
      ]),
    }
    const encoded = encodeMessages(message, 4 * MiB)
    expect(encoded).toHaveLength(1)
    // the 1 MiB block goes out as itself: no copy
    expect(encoded[0]?.parts.includes(a.block.data)).toBe(true)
    const [decoded] = unframe(encoded).map(decode)
    const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex')
    expect(decoded?.wantlist?.entries.map((e) => ({ ...e, cid: hex(e.cid) }))).toEqual([
      {
        cid: hex(a.cid.bytes),
        priority: 1,
        cancel: false,
        wantType: 'WantHave',
        sendDontHave: true,
      },
      {
        cid: Buffer.from(b.cid.bytes).toString('hex'),
        priority: 300,
        cancel: true,
        wantType: 'WantBlock',
        sendDontHave: false,
      },
    ])
    // Buffer.equals, not a deep equal (element by element over a MiB)
    expect(
      decoded?.blocks.map((p, i) =>
        Buffer.from(p.data).equals([a, b][i]?.block.data ?? Buffer.alloc(0)),
      ),
    ).toEqual([true, true])
    expect(decoded?.blocks.map((p) => Buffer.from(p.prefix))).toEqual([
      Buffer.from(a.block.prefix),
      Buffer.from(b.block.prefix),
    ])
    expect(
      decoded?.blockPresences.map((p) => ({ ...p, cid: Buffer.from(p.cid).toString('hex') })),
    ).toEqual([
      { cid: Buffer.from(a.cid.bytes).toString('hex'), type: 'HaveBlock' },
      { cid: Buffer.from(b.cid.bytes).toString('hex'), type: 'DoNotHaveBlock' },
    ])
  })

  it('splits at the size limit: five 1 MiB blocks under a 4 MiB limit are two messages, all blocks kept in order', async () => {
    const blocks = await Promise.all([0, 1, 2, 3, 4].map(() => block(MiB)))
    const message: EncodableMessage = {
      wantlist: new Map(),
      blocks: new Map(blocks.map((b, i) => [String(i), b.block])),
      blockPresences: new Map(),
    }
    const encoded = encodeMessages(message, 4 * MiB)
    expect(encoded.map((m) => m.byteLength <= 4 * MiB + 8)).toEqual([true, true])
    const decoded = unframe(encoded).map(decode)
    expect(decoded.map((d) => d.blocks.length)).toEqual([3, 2])
    // each block's own array, between one array of framing (the length prefix and the block's
    // framing joined: before, two parts, each encrypted and written to the socket by itself)
    expect(encoded.map((m) => m.parts.length)).toEqual([6, 4])
    const sent = encoded.flatMap((m) => m.parts.filter((p) => p.byteLength === MiB))
    expect(sent.every((part, i) => part === blocks[i]?.block.data)).toBe(true)
    const data = Buffer.concat(decoded.flatMap((d) => d.blocks.map((p) => p.data)))
    expect(data.equals(Buffer.concat(blocks.map((b) => b.block.data)))).toBe(true)
  })
})
