/**
 * The header signature checked once (`verifiedCapsuleHeader` → `OpenOptions.verified`): an open
 * given the proof recovers no signer, on every open path; the proof cannot be forged, copied or
 * taken for another header; a header changed after its check, or another owner asked for, is
 * still refused. Signer recoveries are counted at capsule-core's one recovery function.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest'
import { recoverDigestSigner } from '../src/eip712/signature.ts'
import {
  addressFromPrivateKey,
  HEADER_SIGNATURE_CHANNEL,
  openCapsule,
  openFile,
  openNodeStream,
  type ParsedCapsuleHeader,
  parseCapsuleHeader,
  prepareOpen,
  type VerifiedCapsuleHeader,
  verifiedCapsuleHeader,
  verifyCapsuleHeader,
} from '../src/index.ts'
import { build, DATA_KEY, detBytes, OTHER_KEY, OWNER } from './fixtures.ts'

vi.mock('../src/eip712/signature.ts', async (importOriginal) => {
  const real = await importOriginal<typeof import('../src/eip712/signature.ts')>()
  return { ...real, recoverDigestSigner: vi.fn(real.recoverDigestSigner) }
})
const recoveries = () => vi.mocked(recoverDigestSigner).mock.calls.length
/** What HEADER_SIGNATURE_CHANNEL published, to check it against the recoveries counted. */
const published: unknown[] = []
const onCheck = (message: unknown) => published.push(message)
subscribe(HEADER_SIGNATURE_CHANNEL, onCheck)
afterAll(() => unsubscribe(HEADER_SIGNATURE_CHANNEL, onCheck))
beforeEach(() => {
  vi.mocked(recoverDigestSigner).mockClear()
  published.length = 0
})

const tmp = mkdtempSync(join(tmpdir(), 'digicap-verified-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

const built = build(detBytes('verified once', 5000), 1024)
const other = build(detBytes('another capsule', 700), 256, { capsuleId: detBytes('other id', 32) })
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
/** The capsule with the other capsule's signature in place of its own: not its owner's. */
const forged = (() => {
  const bytes = built.capsule.slice()
  bytes.set(other.signature, parseCapsuleHeader(bytes).payloadOffset - other.signature.length)
  return bytes
})()
/** A fresh parse of the capsule, with its own objects (changing it leaves `built` alone). */
const parsed = (capsule = built.capsule): ParsedCapsuleHeader => parseCapsuleHeader(capsule)
const opened = (p: ParsedCapsuleHeader, verified?: VerifiedCapsuleHeader) => {
  const opener = prepareOpen(
    p,
    verified === undefined ? { dataKey: DATA_KEY } : { dataKey: DATA_KEY, verified },
  )
  const out = Buffer.concat(opener.write(built.capsule.subarray(p.payloadOffset)))
  opener.end()
  return hex(out)
}

describe('an open given the proof does not check the signature again', () => {
  it('prepareOpen: one recovery at the check, none at the open; without the proof, one more', () => {
    const p = parsed()
    const verified = verifiedCapsuleHeader(p)
    expect(verified.owner).toBe(OWNER)
    expect(recoveries()).toBe(1)
    expect(opened(p, verified)).toBe(hex(built.plaintext))
    expect(recoveries()).toBe(1)
    // the count sees a check where there is one: the open without a proof checks
    expect(opened(p)).toBe(hex(built.plaintext))
    expect(recoveries()).toBe(2)
    // the diagnostics channel tells each check, with the capsule it was for
    expect(published).toEqual([
      { capsuleId: p.header.capsuleId },
      { capsuleId: p.header.capsuleId },
    ])
  })

  it('openCapsule, openNodeStream and openFile take it for their own parse of the same bytes', async () => {
    const verified = verifiedCapsuleHeader(parsed())
    expect(hex(openCapsule(built.capsule, { dataKey: DATA_KEY, verified }).plaintext)).toBe(
      hex(built.plaintext),
    )
    const parts: Buffer[] = []
    await pipeline(
      Readable.from([built.capsule.subarray(0, 100), built.capsule.subarray(100)]),
      openNodeStream({ dataKey: DATA_KEY, verified, owner: OWNER }),
      new Writable({
        write(chunk: Buffer, _enc, done) {
          parts.push(Buffer.from(chunk))
          done()
        },
      }),
    )
    expect(hex(Buffer.concat(parts))).toBe(hex(built.plaintext))
    const input = join(tmp, 'in.capsule')
    writeFileSync(input, built.capsule)
    await openFile({ input, output: join(tmp, 'out.bin'), dataKey: DATA_KEY, verified })
    expect(hex(readFileSync(join(tmp, 'out.bin')))).toBe(hex(built.plaintext))
    expect(recoveries()).toBe(1)
  })
})

describe('the proof holds only for the header it was made for, unchanged', () => {
  it('a header changed after its check is checked again and refused', () => {
    const changes: [string, (p: ParsedCapsuleHeader) => void][] = [
      ['owner', (p) => Object.assign(p.header, { owner: addressFromPrivateKey(OTHER_KEY) })],
      ['createdAt', (p) => Object.assign(p.header, { createdAt: p.header.createdAt + 1 })],
      ['plaintextSize', (p) => Object.assign(p.header.payload, { plaintextSize: 4999 })],
      ['signature', (p) => p.signature.set([(p.signature[5] as number) ^ 1], 5)],
    ]
    for (const [field, change] of changes) {
      const p = parsed()
      const verified = verifiedCapsuleHeader(p)
      change(p)
      vi.mocked(recoverDigestSigner).mockClear()
      expect(() => prepareOpen(p, { dataKey: DATA_KEY, verified }), field).toThrow(
        expect.objectContaining({ code: 'CAPSULE_SIGNATURE' }),
      )
      expect(recoveries(), field).toBe(1)
    }
  })

  it('for another capsule’s header it checks that header: a good one opens, a bad one is refused', () => {
    const verified = verifiedCapsuleHeader(parsed())
    const theirs = parsed(other.capsule)
    const opener = prepareOpen(theirs, { dataKey: DATA_KEY, verified })
    const out = Buffer.concat(opener.write(other.capsule.subarray(theirs.payloadOffset)))
    opener.end()
    expect(hex(out)).toBe(hex(other.plaintext))
    expect(recoveries()).toBe(2)
    // the other capsule's proof, for a header whose signature is not its owner's
    const theirsVerified = verifiedCapsuleHeader(theirs)
    expect(() =>
      prepareOpen(parsed(forged), { dataKey: DATA_KEY, verified: theirsVerified }),
    ).toThrow(expect.objectContaining({ code: 'CAPSULE_SIGNATURE' }))
  })

  it('another expected owner is refused as verifyCapsuleHeader refuses it', () => {
    const p = parsed()
    const verified = verifiedCapsuleHeader(p)
    const owner = addressFromPrivateKey(OTHER_KEY)
    expect(() => prepareOpen(p, { dataKey: DATA_KEY, verified, owner })).toThrow(
      /not the expected owner/,
    )
    expect(() => verifyCapsuleHeader(p, { owner })).toThrow(/not the expected owner/)
  })
})

describe('a proof cannot be made outside capsule-core', () => {
  it('refuses a look-alike, a copy, a derived object and a changed proof, typed', () => {
    const p = parsed()
    const verified = verifiedCapsuleHeader(p)
    const fakes: [string, unknown][] = [
      ['look-alike', { owner: OWNER }],
      ['copy', { ...verified }],
      ['clone', structuredClone(verified)],
      ['derived', Object.create(verified)],
      ['primitive', OWNER],
    ]
    for (const [name, fake] of fakes) {
      vi.mocked(recoverDigestSigner).mockClear()
      expect(
        () => prepareOpen(p, { dataKey: DATA_KEY, verified: fake as VerifiedCapsuleHeader }),
        name,
      ).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }))
      expect(recoveries(), name).toBe(0)
    }
    // the proof itself is frozen: its owner cannot be swapped
    expect(Object.isFrozen(verified)).toBe(true)
    expect(() => Object.assign(verified, { owner: addressFromPrivateKey(OTHER_KEY) })).toThrow(
      TypeError,
    )
  })

  it('verifiedCapsuleHeader refuses a bad signature as verifyCapsuleHeader does, and makes no proof', () => {
    expect(() => verifiedCapsuleHeader(parsed(forged))).toThrow(
      expect.objectContaining({ code: 'CAPSULE_SIGNATURE' }),
    )
    expect(() => verifyCapsuleHeader(parsed(forged))).toThrow(
      expect.objectContaining({ code: 'CAPSULE_SIGNATURE' }),
    )
  })
})
