/**
 * `commitAndSealFile` reads its input twice when it cannot hold the chunk tags or the output
 * takes no positional writes (a pipe): once for the commitment, once to encrypt. A same-size
 * change in between (another process writing the file while `sign` waits for a device) once
 * gave a signed capsule that never opens, with no error. Now the encrypt pass hashes the
 * leaves again and must meet the commitment: `INVALID_ARGUMENT` ("input file changed while
 * sealing"), before the last chunk reaches a pipe, and nothing left behind in a file output.
 * Real files and a real FIFO read by `cat`.
 */
import { execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { fileLimits } from '../src/file/index.ts'
import { commitAndSealFile, DigicapError, openCapsule, signCapsuleHeader } from '../src/index.ts'
import { BASE, DATA_KEY, detBytes, OWNER_KEY } from './fixtures.ts'

const tmp = mkdtempSync(join(tmpdir(), 'digicap-two-pass-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

const plaintext = detBytes('two pass', 1000)
/** `sign` runs between the passes: it stands for another process writing the file then. */
const changingSign = (input: string) => (h: Parameters<typeof signCapsuleHeader>[0]) => {
  const changed = Uint8Array.from(plaintext)
  changed[500] = (changed[500] as number) ^ 0xff
  writeFileSync(input, changed)
  return signCapsuleHeader(h, OWNER_KEY)
}

/** Seals `input` into a FIFO read by `cat`; returns the outcome and the bytes that came out. */
async function sealToPipe(input: string, sign: Parameters<typeof commitAndSealFile>[0]['sign']) {
  const fifo = join(tmp, `out-${Math.random().toString(16).slice(2)}.fifo`)
  execFileSync('mkfifo', [fifo])
  const cat = spawn('cat', [fifo])
  const chunks: Buffer[] = []
  cat.stdout.on('data', (c: Buffer) => chunks.push(c))
  const catDone = new Promise((res) => cat.on('exit', res))
  const outcome = await commitAndSealFile({
    ...BASE,
    chunkSize: 256,
    dataKey: DATA_KEY,
    input,
    output: fifo,
    sign,
  }).then(
    (parsed) => ({ parsed }),
    (error: unknown) => ({ error }),
  )
  await catDone
  return { outcome, bytes: Buffer.concat(chunks) }
}

describe.skipIf(process.platform === 'win32')('the two-pass fallback', () => {
  it('to a pipe: a same-size change between the passes is INVALID_ARGUMENT, and the pipe never gets a whole capsule', async () => {
    const input = join(tmp, 'pipe.bin')
    writeFileSync(input, plaintext)
    const { outcome, bytes } = await sealToPipe(input, changingSign(input))
    expect('error' in outcome).toBe(true)
    const err = (outcome as { error: unknown }).error
    expect(err).toBeInstanceOf(DigicapError)
    expect(err).toMatchObject({ code: 'INVALID_ARGUMENT' })
    expect((err as DigicapError).shortMessage).toMatch(/changed while sealing/)
    // the reader saw the prefix and all but the last chunk: the capsule is truncated, typed
    expect(() => openCapsule(bytes, { dataKey: DATA_KEY })).toThrow(
      expect.objectContaining({ code: 'CAPSULE_TRUNCATED' }),
    )
  })

  it('to a pipe: an unchanged file still seals and opens', async () => {
    const input = join(tmp, 'pipe-ok.bin')
    writeFileSync(input, plaintext)
    const { outcome, bytes } = await sealToPipe(input, (h) => signCapsuleHeader(h, OWNER_KEY))
    expect('parsed' in outcome).toBe(true)
    const opened = openCapsule(bytes, { dataKey: DATA_KEY })
    expect(Buffer.from(opened.plaintext).equals(Buffer.from(plaintext))).toBe(true)
  })

  it('to a file, when the tags do not fit: the same change is INVALID_ARGUMENT and no output is left', async () => {
    const input = join(tmp, 'file.bin')
    writeFileSync(input, plaintext)
    const dir = mkdtempSync(join(tmp, 'out-'))
    const saved = fileLimits.maxHeldTagBytes
    fileLimits.maxHeldTagBytes = 16 // 4 chunks do not fit: read twice
    try {
      for (const threads of [1, 2]) {
        writeFileSync(input, plaintext)
        await expect(
          commitAndSealFile({
            ...BASE,
            chunkSize: 256,
            dataKey: DATA_KEY,
            input,
            output: join(dir, 'x.capsule'),
            threads,
            sign: changingSign(input),
          }),
        ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
        expect(readdirSync(dir)).toEqual([])
      }
      // unchanged: seals, and opens
      writeFileSync(input, plaintext)
      await commitAndSealFile({
        ...BASE,
        chunkSize: 256,
        dataKey: DATA_KEY,
        input,
        output: join(dir, 'ok.capsule'),
        sign: (h) => signCapsuleHeader(h, OWNER_KEY),
      })
      const opened = openCapsule(readFileSync(join(dir, 'ok.capsule')), { dataKey: DATA_KEY })
      expect(Buffer.from(opened.plaintext).equals(Buffer.from(plaintext))).toBe(true)
    } finally {
      fileLimits.maxHeldTagBytes = saved
    }
  })
})
