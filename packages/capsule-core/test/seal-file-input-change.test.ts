/**
 * `sealFile` seals a file against a header made in advance (its commitment hashed the file
 * before). It read the file once and checked only its size: a same-size edit by another process
 * while it was read gave a signed capsule that never opens, with no error. Now the file's fstat
 * (size, mtime, ctime) must be the same after the last chunk is read as before the first:
 * `INVALID_ARGUMENT` ("input file changed while sealing", `details.changed`), before the last
 * chunk reaches a pipe, and no output left behind in a file. One thread and worker lanes,
 * real files and a real FIFO read by `cat`.
 */
import { execFileSync, spawn } from 'node:child_process'
import { randomFillSync } from 'node:crypto'
import {
  closeSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import {
  commitPlaintextFile,
  createCapsuleHeader,
  DigicapError,
  openCapsule,
  PARALLEL_FILE_MIN_BYTES,
  sealFile,
  signCapsuleHeader,
} from '../src/index.ts'
import { BASE, CAPSULE_ID, DATA_KEY, detBytes, OWNER_KEY } from './fixtures.ts'

const tmp = mkdtempSync(join(tmpdir(), 'digicap-seal-change-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/**
 * A file of `size` bytes and a signed header committing to it. Its times are set back and a
 * little time passes, so that an edit during the seal lands on a later tick of the file system's
 * clock than the file's last change (`checkInputUnchanged`: one tick is what it cannot see).
 */
async function prepared(name: string, size: number, chunkSize: number) {
  // Large files are random (keccak per 32 bytes would take seconds for 32 MiB).
  const plaintext = size > 65536 ? randomFillSync(new Uint8Array(size)) : detBytes(name, size)
  const input = join(tmp, `${name}.bin`)
  writeFileSync(input, plaintext)
  utimesSync(input, new Date(2020, 0, 1), new Date(2020, 0, 1))
  const commitment = await commitPlaintextFile(input, DATA_KEY, CAPSULE_ID, { chunkSize })
  const header = createCapsuleHeader({ ...BASE, dataKey: DATA_KEY, commitment })
  await sleep(30)
  return { plaintext, input, header, signature: signCapsuleHeader(header, OWNER_KEY) }
}

/** Writes one byte, flipped, at `at`: the size stays the same. */
function flipByte(input: string, at: number): void {
  const fd = openSync(input, 'r+')
  try {
    const b = new Uint8Array(1)
    readSync(fd, b, 0, 1, at)
    writeSync(fd, Uint8Array.of((b[0] as number) ^ 0xff), 0, 1, at)
  } finally {
    closeSync(fd)
  }
}

/** An `onProgress` that edits the file once, after the first chunk is sealed. */
function editOnce(input: string, at: number) {
  let done = false
  return () => {
    if (done) return
    done = true
    flipByte(input, at)
  }
}

function expectInputChanged(err: unknown): void {
  expect(err).toBeInstanceOf(DigicapError)
  expect(err).toMatchObject({ code: 'INVALID_ARGUMENT' })
  expect((err as DigicapError).shortMessage).toMatch(/changed while sealing/)
  expect(String((err as DigicapError).details.changed)).toMatch(/mtimeNs|ctimeNs/)
}

describe.skipIf(process.platform === 'win32')(
  'sealFile: the input changes while it is sealed',
  () => {
    it('to a file, one thread: a same-size edit after the first chunk is INVALID_ARGUMENT and no output is left', async () => {
      const { input, header, signature } = await prepared('one-thread', 4000, 256)
      const dir = mkdtempSync(join(tmp, 'out-'))
      const err = await sealFile({
        header,
        signature,
        dataKey: DATA_KEY,
        input,
        output: join(dir, 'x.capsule'),
        threads: 1,
        onProgress: editOnce(input, 3000), // a chunk not read yet
      }).then(
        () => undefined,
        (e: unknown) => e,
      )
      expectInputChanged(err)
      expect(readdirSync(dir)).toEqual([])
    })

    it('to a file, worker lanes: the same, even when the lanes read the edited chunk before the edit', async () => {
      const size = PARALLEL_FILE_MIN_BYTES + 4096
      const { input, header, signature } = await prepared('lanes', size, 1024 * 1024)
      const dir = mkdtempSync(join(tmp, 'out-'))
      const err = await sealFile({
        header,
        signature,
        dataKey: DATA_KEY,
        input,
        output: join(dir, 'x.capsule'),
        threads: 2,
        onProgress: editOnce(input, 10),
      }).then(
        () => undefined,
        (e: unknown) => e,
      )
      expectInputChanged(err)
      expect(readdirSync(dir)).toEqual([])
    }, 60_000)

    it('to a pipe: the reader never gets a whole capsule', async () => {
      const { input, header, signature } = await prepared('pipe', 4000, 256)
      const fifo = join(tmp, 'out.fifo')
      execFileSync('mkfifo', [fifo])
      const cat = spawn('cat', [fifo])
      const chunks: Buffer[] = []
      cat.stdout.on('data', (c: Buffer) => chunks.push(c))
      const catDone = new Promise((res) => cat.on('exit', res))
      const err = await sealFile({
        header,
        signature,
        dataKey: DATA_KEY,
        input,
        output: fifo,
        onProgress: editOnce(input, 3000),
      }).then(
        () => undefined,
        (e: unknown) => e,
      )
      await catDone
      expectInputChanged(err)
      expect(() => openCapsule(Buffer.concat(chunks), { dataKey: DATA_KEY })).toThrow(
        expect.objectContaining({ code: 'CAPSULE_TRUNCATED' }),
      )
    })

    it('a file nothing writes to meanwhile seals and opens, one thread and lanes', async () => {
      for (const [name, size, chunkSize, threads] of [
        ['still-one', 4000, 256, 1],
        ['still-lanes', PARALLEL_FILE_MIN_BYTES + 4096, 1024 * 1024, 2],
      ] as const) {
        const { plaintext, input, header, signature } = await prepared(name, size, chunkSize)
        const output = join(tmp, `${name}.capsule`)
        await sealFile({ header, signature, dataKey: DATA_KEY, input, output, threads })
        const opened = openCapsule(readFileSync(output), { dataKey: DATA_KEY })
        expect(Buffer.from(opened.plaintext).equals(Buffer.from(plaintext))).toBe(true)
      }
    }, 60_000)
  },
)
