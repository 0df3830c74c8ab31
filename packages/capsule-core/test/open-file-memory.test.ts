/**
 * README promise: `openFile`'s peak RSS does not grow with the capsule (README "peak RSS under
 * 96 MiB for any size"). A fresh process opens a 128 MiB capsule with the default lanes; its
 * own peak (`VmHWM`) is compared with a process that only loads the library. Buffering the
 * plaintext, or lanes reading ahead without a bound, would add the capsule's size.
 *
 * The peak is read from /proc/self/status, not `process.resourceUsage().maxRSS`: on Linux a
 * forked child's `ru_maxrss` starts at the RSS its parent (this vitest worker, which just
 * sealed the capsule) had at fork time, which is how a bench once reported 1.1 GiB here.
 * The child runs under `--input-type=module` on purpose: workers inherit it, and the lane
 * worker's source once failed there (`require` is not defined in an ES module).
 */
import { execFile } from 'node:child_process'
import { randomFillSync } from 'node:crypto'
import { closeSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { commitAndSealFile, signCapsuleHeader } from '../src/index.ts'
import { BASE, DATA_KEY, OWNER_KEY } from './fixtures.ts'

const MiB = 1024 * 1024
const SIZE = 128 * MiB
const LINUX = process.platform === 'linux'
const tmp = mkdtempSync(join(tmpdir(), 'digicap-open-memory-'))
const capsule = join(tmp, 'data.capsule')
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

/** Runs in a fresh node: `load` (library only) or `open <capsule> <out>`; prints its VmHWM, KiB. */
const CHILD = `
import { readFileSync } from 'node:fs'
const { openFile } = await import(${JSON.stringify(new URL('../src/index.ts', import.meta.url).href)})
const [op, input, output, key] = process.argv.slice(1)
if (op === 'open') await openFile({ input, output, dataKey: Buffer.from(key, 'hex') })
console.log(/VmHWM:\\s+(\\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1])
`

async function childPeakMiB(...args: string[]): Promise<number> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--input-type=module', '-e', CHILD, ...args],
    { timeout: 120_000 },
  )
  return Number(stdout.trim().split('\n').at(-1)) / 1024
}

describe.runIf(LINUX)('openFile peak memory', () => {
  beforeAll(async () => {
    const plain = join(tmp, 'plain.bin')
    const fd = openSync(plain, 'w')
    const block = Buffer.allocUnsafe(16 * MiB)
    for (let left = SIZE; left > 0; left -= block.length) writeSync(fd, randomFillSync(block))
    closeSync(fd)
    await commitAndSealFile({
      ...BASE,
      dataKey: DATA_KEY,
      sign: (h) => signCapsuleHeader(h, OWNER_KEY),
      input: plain,
      output: capsule,
    })
    rmSync(plain)
  }, 120_000)

  it('opens a 128 MiB capsule to a file within a fixed margin of the library alone', async () => {
    const floor = await childPeakMiB('load')
    const out = join(tmp, 'opened.bin')
    const open = await childPeakMiB('open', capsule, out, Buffer.from(DATA_KEY).toString('hex'))
    expect(statSync(out).size).toBe(SIZE)
    // Lanes: up to 3 worker isolates (~18 MiB each) and a few 1 MiB chunk buffers; never the
    // capsule's 128 MiB.
    expect(open - floor, `floor ${floor.toFixed(1)} MiB, open ${open.toFixed(1)} MiB`).toBeLessThan(
      64,
    )
  }, 240_000)
})
