/**
 * `openFile` checks the plaintext commitment in a worker thread for large capsules. These
 * tests force that path on small capsules (many small chunks) and check it accepts and
 * rejects exactly what the inline check does, with the same error codes and reasons.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { openFileWith } from '../src/file.ts'
import {
  commitPlaintextFile,
  createCapsuleHeader,
  createPlaintextCommitment,
  sealFile,
  signCapsuleHeader,
} from '../src/index.ts'
import { BASE, CAPSULE_ID, DATA_KEY, detBytes, OWNER_KEY, WRONG_KEY } from './fixtures.ts'

const tmp = mkdtempSync(join(tmpdir(), 'digicap-parallel-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

const CHUNK = 1024
const plaintext = detBytes('parallel commitment', 37 * CHUNK + 11)
const input = join(tmp, 'plain.bin')
writeFileSync(input, plaintext)

/** Seals `input` under a header whose commitment is `commitment`. */
async function seal(
  name: string,
  commitment: { plaintextSize: number; plaintextCommitment: Uint8Array },
): Promise<string> {
  const header = createCapsuleHeader({ ...BASE, chunkSize: CHUNK, dataKey: DATA_KEY, commitment })
  const output = join(tmp, name)
  await sealFile({
    header,
    signature: signCapsuleHeader(header, OWNER_KEY),
    dataKey: DATA_KEY,
    input,
    output,
  })
  return output
}

/** A capsule whose chunks all authenticate but whose header commits to other content. */
async function sealForeignCommitment(): Promise<string> {
  const c = createPlaintextCommitment(DATA_KEY, CAPSULE_ID)
  const other = plaintext.slice()
  other[other.length - 1] = (other[other.length - 1] as number) ^ 1
  c.update(other)
  return seal('foreign.capsule', c.digest())
}

const MODES = ['worker', 'inline'] as const

describe('openFile commitment check in a worker thread', () => {
  it.each(MODES)('%s: opens to a file and to /dev/null', async (mode) => {
    const capsule = await seal(
      'good.capsule',
      await commitPlaintextFile(input, DATA_KEY, CAPSULE_ID),
    )
    const out = join(tmp, `good-${mode}.bin`)
    const parsed = await openFileWith({ input: capsule, output: out, dataKey: DATA_KEY }, mode)
    expect(parsed.chunkCount).toBe(38)
    expect(Buffer.from(readFileSync(out)).equals(Buffer.from(plaintext))).toBe(true)
    await openFileWith({ input: capsule, output: '/dev/null', dataKey: DATA_KEY }, mode)
  })

  it.each(
    MODES,
  )('%s: a commitment mismatch throws CAPSULE_INTEGRITY and leaves no output', async (mode) => {
    const capsule = await sealForeignCommitment()
    const before = readdirSync(tmp).sort()
    const err = await openFileWith(
      { input: capsule, output: join(tmp, `foreign-${mode}.bin`), dataKey: DATA_KEY },
      mode,
    ).catch((e: unknown) => e)
    expect(err).toMatchObject({
      code: 'CAPSULE_INTEGRITY',
      details: { reason: 'plaintext-commitment' },
    })
    expect(readdirSync(tmp).sort()).toEqual(before)
    // Switching the check off opens it: every chunk does authenticate.
    await openFileWith(
      { input: capsule, output: '/dev/null', dataKey: DATA_KEY, checkCommitment: false },
      mode,
    )
  })

  it.each(MODES)('%s: a tampered, truncated or extended capsule fails as inline', async (mode) => {
    const capsule = await seal('t.capsule', await commitPlaintextFile(input, DATA_KEY, CAPSULE_ID))
    const bytes = readFileSync(capsule)
    const cases: [string, Uint8Array, string, string | undefined][] = [
      ['flip', Uint8Array.from(bytes), 'CAPSULE_INTEGRITY', 'chunk-authentication'],
      ['cut', bytes.subarray(0, bytes.length - 100), 'CAPSULE_TRUNCATED', undefined],
      ['extra', Buffer.concat([bytes, Buffer.from([0])]), 'CAPSULE_INTEGRITY', 'trailing-data'],
    ]
    const flipped = cases[0]?.[1] as Uint8Array
    flipped[bytes.length - 5 * CHUNK] = (flipped[bytes.length - 5 * CHUNK] as number) ^ 0x40
    for (const [name, data, code, reason] of cases) {
      const path = join(tmp, `${name}-${mode}.capsule`)
      writeFileSync(path, data)
      const err = await openFileWith(
        { input: path, output: join(tmp, `${name}-${mode}.out`), dataKey: DATA_KEY },
        mode,
      ).catch((e: unknown) => e)
      expect(err, name).toMatchObject({ code, ...(reason ? { details: { reason } } : {}) })
      rmSync(path)
    }
    expect(readdirSync(tmp).filter((f) => f.endsWith('.out') || f.includes('.partial'))).toEqual([])
  })

  it('a wrong key fails before the worker starts', async () => {
    const capsule = await seal('k.capsule', await commitPlaintextFile(input, DATA_KEY, CAPSULE_ID))
    await expect(
      openFileWith({ input: capsule, output: '/dev/null', dataKey: WRONG_KEY }, 'worker'),
    ).rejects.toMatchObject({ code: 'CAPSULE_KEY' })
  })
})

describe('commitPlaintextFile (double-buffered reads)', () => {
  it.each([
    0,
    1,
    1024 * 1024 - 1,
    1024 * 1024,
    2 * 1024 * 1024 + 3,
  ])('%i bytes: equals the in-memory commitment', async (n) => {
    const data = detBytes(`commit ${n}`, n)
    const path = join(tmp, `commit-${n}.bin`)
    writeFileSync(path, data)
    const c = createPlaintextCommitment(DATA_KEY, CAPSULE_ID)
    c.update(data)
    const want = c.digest()
    const got = await commitPlaintextFile(path, DATA_KEY, CAPSULE_ID)
    expect(got.plaintextSize).toBe(n)
    expect(Buffer.from(got.plaintextCommitment).toString('hex')).toBe(
      Buffer.from(want.plaintextCommitment).toString('hex'),
    )
    rmSync(path)
  })
})
