/**
 * `commitAndSealFile` with a late policy address (the policy contract deployed while the payload
 * is sealed, ADR 0048) and its early syncs of the output. The capsule must be the very bytes
 * of a seal given the address up front; a late address that rejects, or an early sync that
 * fails, must leave nothing behind and be the call's error.
 */
import { createHash } from 'node:crypto'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { type FileHandle, open } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest'
import {
  type Address,
  type CapsuleHeader,
  commitAndSealFile,
  InvalidArgumentError,
  signCapsuleHeader,
} from '../src/index.ts'
import { BASE, DATA_KEY, detBytes, OWNER_KEY } from './fixtures.ts'

const tmp = mkdtempSync(join(tmpdir(), 'digicap-late-policy-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))
afterEach(() => vi.restoreAllMocks())
const sign = (header: CapsuleHeader) => signCapsuleHeader(header, OWNER_KEY)
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')
const KiB = 1024
// 200 chunks of 16 KiB: past the 64 chunks between two early syncs, three times.
const CHUNK = 16 * KiB
const input = join(tmp, 'plain.bin')
writeFileSync(input, detBytes('late policy plaintext', 200 * CHUNK + 333))
const POLICY = BASE.policy.policy
const partials = () => readdirSync(tmp).filter((f) => f.endsWith('.partial'))

const seal = (output: string, policy: Address | Promise<Address>) =>
  commitAndSealFile({
    ...BASE,
    policy: { ...BASE.policy, policy },
    chunkSize: CHUNK,
    dataKey: DATA_KEY,
    sign,
    input,
    output,
  })

/** FileHandle's prototype (not exported by Node): where `datasync` is spied on. */
async function fileHandlePrototype(): Promise<FileHandle> {
  const fh = await open(input, 'r')
  await fh.close()
  return Object.getPrototypeOf(fh) as FileHandle
}

describe('commitAndSealFile with a late policy address', () => {
  it('makes the same bytes as the address given up front, and the header names it', async () => {
    const early = join(tmp, 'early.capsule')
    await seal(early, POLICY)
    const late = join(tmp, 'late.capsule')
    // resolved only after the payload is sealed: the address is awaited at the header
    let resolve: (a: Address) => void = () => {}
    const address = new Promise<Address>((r) => {
      resolve = r
    })
    const sealing = seal(late, address)
    setTimeout(() => resolve(POLICY), 50)
    const parsed = await sealing
    expect(parsed.header.policy.policy).toBe(POLICY)
    expect(sha(readFileSync(late))).toBe(sha(readFileSync(early)))
  })

  it('a late address that rejects (even before the seal awaits it) leaves nothing, and is the error', async () => {
    const output = join(tmp, 'rejected.capsule')
    const deployFailed = new Error('the policy deployment reverted')
    // rejects at once, while the chunks are still being sealed: no unhandled rejection
    await expect(seal(output, Promise.reject(deployFailed))).rejects.toBe(deployFailed)
    expect(existsSync(output)).toBe(false)
    expect(partials()).toEqual([])
  })

  it('a late address that is not an address is an InvalidArgumentError, nothing left', async () => {
    const output = join(tmp, 'bad-address.capsule')
    await expect(seal(output, Promise.resolve('0x1234' as Address))).rejects.toBeInstanceOf(
      InvalidArgumentError,
    )
    expect(existsSync(output)).toBe(false)
    expect(partials()).toEqual([])
  })
})

describe('commitAndSealFile early syncs', () => {
  it('syncs the output while it seals, not only at the end', async () => {
    const proto = await fileHandlePrototype()
    const datasync = vi.spyOn(proto, 'datasync')
    const output = join(tmp, 'synced.capsule')
    await seal(output, POLICY)
    // 200 chunks: at least one sync started before the last chunk (every 64 chunks)
    expect(datasync.mock.calls.length).toBeGreaterThanOrEqual(1)
    expect(sha(readFileSync(output))).toBe(sha(readFileSync(join(tmp, 'early.capsule'))))
  })

  it('a failed early sync fails the seal (Linux reports it once), nothing left', async () => {
    const proto = await fileHandlePrototype()
    const eio = Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' })
    vi.spyOn(proto, 'datasync').mockRejectedValue(eio)
    const output = join(tmp, 'eio.capsule')
    await expect(seal(output, POLICY)).rejects.toBe(eio)
    expect(existsSync(output)).toBe(false)
    expect(partials()).toEqual([])
  })
})
