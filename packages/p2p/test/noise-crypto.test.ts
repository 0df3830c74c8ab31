/**
 * Noise with prepared keys (`src/noise-crypto.ts`): byte for byte what noise's default crypto
 * seals and opens, for whole messages and messages in parts, under and over the size where the
 * default changes cipher; a key changed in place is used as it is now; a forged tag or body is
 * refused, whole and in parts; each key is prepared once, not per message; and a Digicap node
 * talks to a stock noise node, both ways, over real TCP, with its large messages on prepared keys.
 */
import { createHash, randomBytes } from 'node:crypto'
import { noise } from '@chainsafe/libp2p-noise'
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto'
import { yamux } from '@chainsafe/libp2p-yamux'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p, type Libp2p } from 'libp2p'
import { Uint8ArrayList } from 'uint8arraylist'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createDigicapNode, type DigicapNode } from '../src/index.ts'
import {
  keyObjectOf,
  preparedKeyNoiseCrypto as prepared,
  preparedKeyCounts,
} from '../src/noise-crypto.ts'

/** The bytes as a plain Uint8Array (a Buffer or a list of parts are compared by their bytes). */
const flat = (b: Uint8Array | { subarray(): Uint8Array }): Uint8Array =>
  Uint8Array.from(b instanceof Uint8Array ? b : b.subarray())
/** The same bytes as a list of uneven parts, as a message that arrived in pieces. */
const inParts = (bytes: Uint8Array): Uint8ArrayList => {
  const list = new Uint8ArrayList()
  for (let at = 0, step = 1; at < bytes.length; at += step, step = step * 3 + 7)
    list.append(bytes.subarray(at, Math.min(bytes.length, at + step)))
  return list
}

describe('noise crypto with prepared keys', () => {
  const k = new Uint8Array(randomBytes(32))
  const nonce = new Uint8Array(12).fill(3)
  const ad = new Uint8Array(randomBytes(32))

  for (const size of [0, 1, 1199, 1200, 1201, 4096, 65_519]) {
    it(`seals and opens ${size} bytes as noise's default does, whole and in parts`, () => {
      const plain = new Uint8Array(randomBytes(size))
      const want = flat(defaultCrypto.chaCha20Poly1305Encrypt(plain, nonce, ad, k))
      expect(flat(prepared.chaCha20Poly1305Encrypt(plain, nonce, ad, k))).toEqual(want)
      // Our list (uint8arraylist 3) where noise's own (2.4.9) is typed: the two versions
      // recognise each other by a registered symbol, not by class; noise's lists go through
      // the TCP test below.
      const parts = inParts(plain) as never
      expect(flat(prepared.chaCha20Poly1305Encrypt(parts, nonce, ad, k))).toEqual(want)
      expect(flat(prepared.chaCha20Poly1305Decrypt(want, nonce, ad, k))).toEqual(plain)
      expect(flat(prepared.chaCha20Poly1305Decrypt(inParts(want) as never, nonce, ad, k))).toEqual(
        plain,
      )
    })
  }

  // Whole and in parts: noise's transport hands every large message over as a list.
  for (const shape of ['whole', 'in parts'] as const) {
    it(`refuses a forged tag or body, a wrong nonce and a wrong key (${shape})`, () => {
      const plain = new Uint8Array(randomBytes(5000))
      const sealed = Uint8Array.from(flat(prepared.chaCha20Poly1305Encrypt(plain, nonce, ad, k)))
      const as = (b: Uint8Array) => (shape === 'whole' ? b : (inParts(b) as never))
      for (const at of [sealed.length - 1, 0, 2500]) {
        const forged = Uint8Array.from(sealed)
        forged[at] = (forged[at] as number) ^ 1
        expect(() => prepared.chaCha20Poly1305Decrypt(as(forged), nonce, ad, k)).toThrow()
      }
      expect(() =>
        prepared.chaCha20Poly1305Decrypt(as(sealed), new Uint8Array(12).fill(4), ad, k),
      ).toThrow()
      expect(() =>
        prepared.chaCha20Poly1305Decrypt(as(sealed), nonce, ad, new Uint8Array(randomBytes(32))),
      ).toThrow()
      expect(flat(prepared.chaCha20Poly1305Decrypt(as(sealed), nonce, ad, k))).toEqual(plain)
    })
  }

  it('makes its ciphers from a key prepared once, not from the raw bytes', () => {
    const key = new Uint8Array(randomBytes(32))
    const before = { ...preparedKeyCounts }
    const plain = new Uint8Array(randomBytes(5000))
    const sealed = prepared.chaCha20Poly1305Encrypt(plain, nonce, ad, key)
    prepared.chaCha20Poly1305Decrypt(sealed, nonce, ad, key)
    prepared.chaCha20Poly1305Encrypt(inParts(plain) as never, nonce, ad, key)
    prepared.chaCha20Poly1305Decrypt(
      inParts(Uint8Array.from(flat(sealed))) as never,
      nonce,
      ad,
      key,
    )
    expect(preparedKeyCounts.asked - before.asked).toBe(4)
    expect(preparedKeyCounts.made - before.made).toBe(1)
  })

  it('prepares a key once per key array, and again when its bytes change in place', () => {
    const key = new Uint8Array(randomBytes(32))
    expect(keyObjectOf(key)).toBe(keyObjectOf(key))
    const plain = new Uint8Array(randomBytes(3000))
    const before = flat(prepared.chaCha20Poly1305Encrypt(plain, nonce, ad, key))
    key[0] = (key[0] as number) ^ 0xff
    const after = flat(prepared.chaCha20Poly1305Encrypt(plain, nonce, ad, key))
    expect(after).not.toEqual(before)
    expect(after).toEqual(flat(defaultCrypto.chaCha20Poly1305Encrypt(plain, nonce, ad, key)))
    // another array with the same bytes has its own entry, and seals alike
    expect(flat(prepared.chaCha20Poly1305Encrypt(plain, nonce, ad, Uint8Array.from(key)))).toEqual(
      after,
    )
  })
})

describe('a Digicap node and a stock noise node, over TCP', () => {
  const PROTOCOL = '/digicap-test/echo-digest/1'
  let ours: DigicapNode
  let stock: Libp2p
  const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')

  /** Answers a stream with the SHA-256 of everything it received. */
  const digestHandler = async (stream: {
    [Symbol.asyncIterator](): AsyncIterator<Uint8Array | Uint8ArrayList>
    send(b: Uint8Array): boolean
    close(): Promise<void>
  }) => {
    const h = createHash('sha256')
    for await (const c of stream) h.update(c instanceof Uint8Array ? c : c.subarray())
    stream.send(new TextEncoder().encode(h.digest('hex')))
    await stream.close()
  }

  beforeAll(async () => {
    ours = await createDigicapNode()
    stock = await createLibp2p({
      addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
    })
    await ours.libp2p.handle(PROTOCOL, digestHandler as never)
    await stock.handle(PROTOCOL, digestHandler as never)
  })
  afterAll(async () => {
    await Promise.all([ours?.stop(), stock?.stop()])
  })

  const send = async (from: Libp2p, to: string, bytes: Uint8Array) => {
    const stream = (await from.dialProtocol(multiaddr(to), PROTOCOL)) as unknown as {
      [Symbol.asyncIterator](): AsyncIterator<Uint8Array | Uint8ArrayList>
      send(b: Uint8Array): boolean
      onDrain(): Promise<void>
      /** Closes the writable end only (libp2p v3): the answer is still read. */
      close(): Promise<void>
    }
    for (let at = 0; at < bytes.length; at += 100_000) {
      if (!stream.send(bytes.subarray(at, at + 100_000))) await stream.onDrain()
    }
    await stream.close()
    let answer = ''
    for await (const c of stream)
      answer += new TextDecoder().decode(c instanceof Uint8Array ? c : c.subarray())
    return answer
  }

  it('carries 4 MiB each way, every byte as sent, the Digicap end with prepared keys', async () => {
    const before = { ...preparedKeyCounts }
    const bytes = new Uint8Array(randomBytes(4 << 20))
    const stockAddress = stock.getMultiaddrs()[0]?.toString() as string
    const ourAddress = ours.multiaddrs()[0] as string
    expect(await send(ours.libp2p as unknown as Libp2p, stockAddress, bytes)).toBe(sha(bytes))
    expect(await send(stock, ourAddress, bytes)).toBe(sha(bytes))
    // the Digicap node's noise sealed and opened the large messages (8 MiB: 128 of 64 KiB) with
    // prepared keys made once per cipher state (two a connection), not once per message
    expect(preparedKeyCounts.asked - before.asked).toBeGreaterThan(128)
    expect(preparedKeyCounts.made - before.made).toBeLessThanOrEqual(8)
  })
})
