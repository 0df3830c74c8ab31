import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { writeJsonAtomic } from '../src/index.ts'

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
