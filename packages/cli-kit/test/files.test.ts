import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { removeStaleTemps, writeJsonAtomic } from '../src/index.ts'

const dirs: string[] = []
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })))
})

describe('writeJsonAtomic', () => {
  it('creates the folder (0700) and the file (0600), replaces an old file, leaves no temp file', async () => {
    const root = await mkdtemp(join(tmpdir(), 'cli-kit-'))
    dirs.push(root)
    const path = join(root, 'sub', 'config.json')
    await writeJsonAtomic(path, { a: 1 })
    await writeJsonAtomic(path, { a: 2, b: [true] })
    expect(JSON.parse(await readFile(path, 'utf8'))).toEqual({ a: 2, b: [true] })
    expect((await stat(path)).mode & 0o777).toBe(0o600)
    expect((await stat(join(root, 'sub'))).mode & 0o777).toBe(0o700)
    expect(await readdir(join(root, 'sub'))).toEqual(['config.json'])
  })

  it('keeps the old file and removes its temp file when the value cannot be serialized', async () => {
    const root = await mkdtemp(join(tmpdir(), 'cli-kit-'))
    dirs.push(root)
    const path = join(root, 'config.json')
    await writeFile(path, '{"old":true}\n')
    await expect(writeJsonAtomic(path, { n: 1n })).rejects.toThrow(TypeError)
    expect(await readFile(path, 'utf8')).toBe('{"old":true}\n')
    expect(await readdir(root)).toEqual(['config.json'])
  })
})

describe('removeStaleTemps', () => {
  it("removes a crashed writer's temp files (and the old `.tmp` suffix form), keeps a running writer's", async () => {
    const root = await mkdtemp(join(tmpdir(), 'cli-kit-'))
    dirs.push(root)
    const dead = '.tmp-config.json.9999999.a1b2c3d4e5f6' // pid above Linux's pid_max
    const legacy = 'serve.json.a1b2c3d4e5f6.tmp'
    const live = `.tmp-serve.json.${process.ppid}.a1b2c3d4e5f6`
    for (const n of [dead, legacy, live, 'config.json', 'notes.tmp']) {
      await writeFile(join(root, n), '{')
    }
    expect(await removeStaleTemps(root)).toBe(2)
    expect((await readdir(root)).sort()).toEqual([live, 'config.json', 'notes.tmp'].sort())
    expect(await removeStaleTemps(join(root, 'missing'))).toBe(0)
  })

  it("removes a killed seal's capsule file (`.partial` with a dead pid), keeps a running one's and one without a pid", async () => {
    const root = await mkdtemp(join(tmpdir(), 'cli-kit-'))
    dirs.push(root)
    const dead = '.capsule.bin.9999999.a1b2c3d4e5f6.partial'
    const live = `.capsule.bin.${process.ppid}.a1b2c3d4e5f6.partial`
    const old = '.capsule.bin.a1b2c3d4e5f6.partial'
    for (const n of [dead, live, old, 'capsule.json']) await writeFile(join(root, n), 'x')
    expect(await removeStaleTemps(root)).toBe(1)
    expect((await readdir(root)).sort()).toEqual([live, old, 'capsule.json'].sort())
  })

  it('writeJsonAtomic names its temp file with its pid, so a concurrent start keeps it', async () => {
    const root = await mkdtemp(join(tmpdir(), 'cli-kit-'))
    dirs.push(root)
    const path = join(root, 'big.json')
    const writing = writeJsonAtomic(path, { blob: 'x'.repeat(1 << 20) })
    // Whatever temp exists while the write runs is ours (alive): never removed.
    expect(await removeStaleTemps(root)).toBe(0)
    await writing
    expect(await readdir(root)).toEqual(['big.json'])
  })
})
