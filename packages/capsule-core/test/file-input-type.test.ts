/**
 * The file helpers take regular files only, and say so at once. `open(input, 'r')` of a FIFO
 * with no writer blocks (a libuv pool thread held until a writer appears), and the type was
 * checked only after the open: the call hung. Now the open does not block and the type is
 * checked on the descriptor: `INVALID_ARGUMENT` naming the input, quickly. Real FIFOs.
 */
import { execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import {
  commitAndSealFile,
  commitPlaintextFile,
  createCapsuleHeader,
  openFile,
  sealFile,
  signCapsuleHeader,
} from '../src/index.ts'
import { BASE, CAPSULE_ID, DATA_KEY, OWNER_KEY } from './fixtures.ts'

const tmp = mkdtempSync(join(tmpdir(), 'digicap-input-type-'))
const fifos: string[] = []
afterAll(async () => {
  // A helper that still blocked in open(2) would hold the pool: give every FIFO a writer once.
  for (const f of fifos) {
    const w = spawn('sh', ['-c', `exec 3>"${f}"; exec 3>&-`])
    const t = setTimeout(() => w.kill(), 300)
    await new Promise((r) => w.on('exit', r))
    clearTimeout(t)
  }
  rmSync(tmp, { recursive: true, force: true })
})

function fifo(name: string): string {
  const path = join(tmp, name)
  execFileSync('mkfifo', [path])
  fifos.push(path)
  return path
}

/** The outcome within `ms`: 'timeout' when it has not settled (the old hang). */
function within<T>(p: Promise<T>, ms: number): Promise<T | 'timeout' | { error: unknown }> {
  return Promise.race([
    p.then(
      (v) => v,
      (error: unknown) => ({ error }),
    ),
    new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms)),
  ])
}

const invalidInput = (field: string, path: string) => ({
  error: expect.objectContaining({ code: 'INVALID_ARGUMENT', details: { [field]: path } }),
})

describe.skipIf(process.platform === 'win32')('a FIFO with no writer as input', () => {
  it('commitAndSealFile: INVALID_ARGUMENT at once, no output left', async () => {
    const input = fifo('seal.fifo')
    const out = mkdtempSync(join(tmp, 'out-'))
    let signed = 0
    const r = await within(
      commitAndSealFile({
        ...BASE,
        dataKey: DATA_KEY,
        input,
        output: join(out, 'x.capsule'),
        sign: (h) => {
          signed++
          return signCapsuleHeader(h, OWNER_KEY)
        },
      }),
      2000,
    )
    expect(r).toEqual(invalidInput('input', input))
    expect(signed).toBe(0)
    expect(readdirSync(out)).toEqual([])
  })

  it('openFile: INVALID_ARGUMENT at once', async () => {
    const input = fifo('open.fifo')
    const r = await within(openFile({ input, output: join(tmp, 'x.out'), dataKey: DATA_KEY }), 2000)
    expect(r).toEqual(invalidInput('input', input))
  })

  it('sealFile and commitPlaintextFile: INVALID_ARGUMENT at once', async () => {
    const input = fifo('other.fifo')
    const plaintext = new Uint8Array(10)
    const header = createCapsuleHeader({ ...BASE, dataKey: DATA_KEY, plaintext })
    const signature = signCapsuleHeader(header, OWNER_KEY)
    expect(
      await within(
        sealFile({
          header,
          signature,
          dataKey: DATA_KEY,
          input,
          output: join(tmp, 's.capsule'),
        }),
        2000,
      ),
    ).toEqual(invalidInput('input', input))
    expect(await within(commitPlaintextFile(input, DATA_KEY, CAPSULE_ID), 2000)).toEqual(
      invalidInput('path', input),
    )
  })

  it('a regular file still seals and opens (the non-blocking open changes nothing for it)', async () => {
    const input = join(tmp, 'plain.bin')
    writeFileSync(input, 'hello capsule')
    const output = join(tmp, 'plain.capsule')
    await commitAndSealFile({
      ...BASE,
      dataKey: DATA_KEY,
      input,
      output,
      sign: (h) => signCapsuleHeader(h, OWNER_KEY),
    })
    const back = join(tmp, 'plain.out')
    await openFile({ input: output, output: back, dataKey: DATA_KEY })
    expect(execFileSync('cat', [back]).toString()).toBe('hello capsule')
  })
})
