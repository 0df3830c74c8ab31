import { spawn } from 'node:child_process'
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { LockTimeoutError, withFileLock } from '../src/index.ts'

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cli-kit-lock-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const LOCK_TS = fileURLToPath(new URL('../src/lock.ts', import.meta.url))

describe('withFileLock', () => {
  it('runs holders one at a time and removes the lock file after', async () => {
    const lock = join(dir, 'a.lock')
    let inside = 0
    let most = 0
    const order: number[] = []
    await Promise.all(
      [1, 2, 3, 4].map((i) =>
        withFileLock(lock, async () => {
          inside++
          most = Math.max(most, inside)
          await sleep(20)
          order.push(i)
          inside--
        }),
      ),
    )
    expect(most).toBe(1)
    expect(order.sort()).toEqual([1, 2, 3, 4])
    expect(await readdir(dir)).not.toContain('a.lock')
  })

  it('releases the lock when fn throws', async () => {
    const lock = join(dir, 'b.lock')
    await expect(
      withFileLock(lock, async () => {
        throw new Error('boom')
      }),
    ).rejects.toThrow('boom')
    expect(await withFileLock(lock, async () => 7)).toBe(7)
  })

  it("breaks a crashed holder's lock (its pid is gone)", async () => {
    const lock = join(dir, 'c.lock')
    await writeFile(lock, JSON.stringify({ pid: 9_999_999, token: 'dead' })) // above pid_max
    expect(await withFileLock(lock, async () => 'ran', { timeoutMs: 2000 })).toBe('ran')
    expect((await readdir(dir)).filter((n) => n.startsWith('c.lock'))).toEqual([])
  })

  it('waits for a live holder in another process, and times out with LOCK_TIMEOUT', async () => {
    const lock = join(dir, 'd.lock')
    // A real second process holds the lock for 1.5 s.
    const child = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const { withFileLock } = await import(${JSON.stringify(LOCK_TS)});
         await withFileLock(${JSON.stringify(lock)}, async () => {
           process.stdout.write('held\\n'); await new Promise((r) => setTimeout(r, 1500)) })`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    )
    const exited = new Promise((r) => child.on('close', r))
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()))
    const err = await withFileLock(lock, async () => 'no', { timeoutMs: 200, what: 'test lock' })
      .then(() => undefined)
      .catch((e) => e)
    expect(err).toBeInstanceOf(LockTimeoutError)
    expect(err.code).toBe('LOCK_TIMEOUT')
    expect(err.details).toMatchObject({ pid: child.pid })
    const t = Date.now()
    expect(await withFileLock(lock, async () => 'after', { timeoutMs: 30_000 })).toBe('after')
    await exited
    expect(Date.now() - t).toBeLessThan(30_000)
  }, 60_000)
})
