/**
 * `commitAndSealFile`'s `onWritten`: the capsule's bytes handed to the caller while they are
 * flushed (what `pi-node seal` adds to IPFS during the flush), before the output is renamed
 * into place. The hook must see the final bytes, the output must not exist before it is done,
 * and a failing hook must leave nothing behind.
 */
import { createHash } from 'node:crypto'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import {
  type CapsuleHeader,
  commitAndSealFile,
  InvalidArgumentError,
  signCapsuleHeader,
} from '../src/index.ts'
import { BASE, DATA_KEY, detBytes, OWNER_KEY } from './fixtures.ts'

const tmp = mkdtempSync(join(tmpdir(), 'digicap-on-written-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))
const sign = (header: CapsuleHeader) => signCapsuleHeader(header, OWNER_KEY)
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')
const MiB = 1024 * 1024
// 3 chunks of 1 MiB and a short one: several tags moved at the end, the header patched last.
const input = join(tmp, 'plain.bin')
writeFileSync(input, detBytes('on-written plaintext', 3 * MiB + 777))

const seal = (output: string, onWritten?: (path: string) => Promise<void>) =>
  commitAndSealFile({
    ...BASE,
    dataKey: DATA_KEY,
    sign,
    input,
    output,
    ...(onWritten ? { onWritten } : {}),
  })

describe('commitAndSealFile onWritten', () => {
  it('hands over the final bytes before the output exists, and the output is those bytes', async () => {
    const plain = join(tmp, 'plain.capsule')
    await seal(plain)
    const output = join(tmp, 'hooked.capsule')
    let seen: { path: string; digest: string; outputExisted: boolean } | undefined
    await seal(output, async (path) => {
      // let the flush run beside the hook, as the IPFS add does
      await new Promise((resolve) => setTimeout(resolve, 20))
      seen = {
        path,
        digest: sha(readFileSync(path)),
        outputExisted: existsSync(output),
      }
    })
    const final = readFileSync(output)
    expect(seen?.outputExisted).toBe(false)
    expect(seen?.path).not.toBe(output)
    expect(dirname(seen?.path as string)).toBe(tmp)
    // what the hook read is the capsule byte for byte, and the same as a seal without the hook
    expect(seen?.digest).toBe(sha(final))
    expect(sha(final)).toBe(sha(readFileSync(plain)))
    expect(existsSync(seen?.path as string)).toBe(false)
  })

  it('a failing hook leaves no output and no temp file, and its error is the call’s', async () => {
    const output = join(tmp, 'failed.capsule')
    const boom = new Error('the add failed')
    await expect(
      seal(output, async () => {
        throw boom
      }),
    ).rejects.toBe(boom)
    expect(existsSync(output)).toBe(false)
    expect(readdirSync(tmp).filter((f) => f.endsWith('.partial'))).toEqual([])
  })

  it('a hook that throws synchronously is the same failure', async () => {
    const output = join(tmp, 'sync-throw.capsule')
    await expect(
      seal(output, (() => {
        throw new Error('sync')
      }) as never),
    ).rejects.toThrow('sync')
    expect(existsSync(output)).toBe(false)
    expect(readdirSync(tmp).filter((f) => f.endsWith('.partial'))).toEqual([])
  })

  it('refuses a hook for an output that is not a regular file, before sealing', async () => {
    let called = false
    await expect(
      seal('/dev/null', async () => {
        called = true
      }),
    ).rejects.toBeInstanceOf(InvalidArgumentError)
    expect(called).toBe(false)
  })
})
