/**
 * Arguments a caller (or a peer, through a caller) can get wrong, each a typed error rather
 * than a hang, a TypeError or a quiet wrong answer: a non-Uint8Array chunk into `openStream`
 * (its `header` promise once never settled), a digest that is not 32 bytes into
 * `recoverDigestSigner` (the curve library used its first 32 bytes: junk after a signed digest
 * "verified"), and EIP-712 types that do not exist or values of the wrong kind.
 */
import { describe, expect, it } from 'vitest'
import {
  addressFromPrivateKey,
  createCapsuleHeader,
  hashTypedData,
  openStream,
  recoverDigestSigner,
  sealCapsule,
  signCapsuleHeader,
  signDigest,
  type TypedData,
} from '../src/index.ts'
import { BASE, DATA_KEY, detBytes, OWNER_KEY } from './fixtures.ts'

const within = <T>(p: Promise<T>, ms: number) =>
  Promise.race([
    p.then(
      (v) => ({ v }),
      (e: unknown) => ({ e }),
    ),
    new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms)),
  ])

function capsule(): Uint8Array {
  const plaintext = detBytes('hostile args', 300)
  const header = createCapsuleHeader({ ...BASE, dataKey: DATA_KEY, plaintext, chunkSize: 64 })
  return sealCapsule({
    header,
    signature: signCapsuleHeader(header, OWNER_KEY),
    dataKey: DATA_KEY,
    plaintext,
  })
}

describe('openStream', () => {
  it('an ArrayBuffer chunk errors the stream and rejects `header` with INVALID_ARGUMENT', async () => {
    const bytes = capsule()
    const open = openStream({ dataKey: DATA_KEY })
    const piped = new ReadableStream({
      start(c) {
        c.enqueue(bytes.buffer.slice(0)) // an ArrayBuffer, as some sources give
        c.close()
      },
    })
      .pipeThrough(open as unknown as TransformStream<ArrayBuffer, Uint8Array>)
      .pipeTo(new WritableStream())
    expect(await within(piped, 2000)).toMatchObject({ e: { code: 'INVALID_ARGUMENT' } })
    expect(await within(open.header, 2000)).toMatchObject({
      e: { code: 'INVALID_ARGUMENT', details: { type: 'ArrayBuffer' } },
    })
  })

  it('Uint8Array chunks still open', async () => {
    const bytes = capsule()
    const open = openStream({ dataKey: DATA_KEY })
    const out: Uint8Array[] = []
    await new Blob([bytes])
      .stream()
      .pipeThrough(open)
      .pipeTo(new WritableStream({ write: (c) => void out.push(c) }))
    expect((await open.header).header.owner).toBe(BASE.owner)
    expect(Buffer.concat(out).equals(Buffer.from(detBytes('hostile args', 300)))).toBe(true)
  })
})

describe('recoverDigestSigner', () => {
  it('refuses a digest that is not 32 bytes (junk after a signed digest does not verify)', () => {
    const digest = detBytes('digest', 32)
    const sig = signDigest(digest, OWNER_KEY)
    expect(recoverDigestSigner(digest, sig)).toBe(addressFromPrivateKey(OWNER_KEY))
    const long = new Uint8Array(64)
    long.set(digest)
    long.set(detBytes('junk', 32), 32)
    for (const d of [long, digest.subarray(0, 31), new Uint8Array(0)]) {
      expect(() => recoverDigestSigner(d, sig)).toThrow(
        expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
      )
    }
  })
})

describe('hashTypedData with types EIP-712 does not have', () => {
  const td = (type: string, a: unknown): TypedData => ({
    domain: { name: 'x', chainId: 1 },
    types: { Thing: [{ name: 'a', type }] },
    primaryType: 'Thing',
    message: { a },
  })
  it.each([
    ['constructor (an Object.prototype member, not a struct)', td('constructor', {})],
    ['toString', td('toString', {})],
    ['bytes64', td('bytes64', new Uint8Array(64))],
    ['bytes0', td('bytes0', new Uint8Array(0))],
    ['bytes033', td('bytes033', new Uint8Array(33))],
    ['uint7', td('uint7', 1)],
    ['int264', td('int264', 1)],
    ['uint0', td('uint0', 0)],
    ["bool 'false' (a string, truthy)", td('bool', 'false')],
    ['bool 1', td('bool', 1)],
    ['primaryType constructor', { ...td('uint8', 1), primaryType: 'constructor' }],
  ])('%s is INVALID_ARGUMENT', (_, data) => {
    expect(() => hashTypedData(data)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }))
  })

  it('the real ones still hash: bytes1, bytes32, uint8, int256, bool true/false', () => {
    for (const [type, a] of [
      ['bytes1', new Uint8Array(1)],
      ['bytes32', new Uint8Array(32)],
      ['uint8', 255],
      ['int256', -1],
      ['uint', 5],
      ['bool', true],
      ['bool', false],
    ] as const) {
      expect(hashTypedData(td(type, a))).toHaveLength(32)
    }
  })
})
