/**
 * The compile cache every entry point turns on (ADR 0046). Spawned for real: Node's cache is
 * per process. What it promises: the cache goes to this user's own 0700 directory (never
 * Node's shared default under the temp dir), a directory someone else could write is refused
 * with one warning line, and nothing about the cache ever makes the command fail.
 */
import { spawnSync } from 'node:child_process'
import {
  chmodSync,
  chownSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { compileCacheDir } from '../bin/compile-cache.js'

const repo = fileURLToPath(new URL('../../../', import.meta.url))
const HELPER = join(repo, 'packages/cli-kit/bin/compile-cache.js')
const tmp = mkdtempSync(join(tmpdir(), 'cli-kit-cache-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

/** A fresh Node process that enables the cache, imports a module, and prints the result. */
function enableIn(env: Record<string, string | undefined>) {
  const script = `import { enableCompileCache } from ${JSON.stringify(HELPER)}
const r = enableCompileCache('test')
await import(${JSON.stringify(join(repo, 'packages/cli-kit/bin/require-node.js'))})
process.stdout.write(JSON.stringify(r))`
  const { NODE_COMPILE_CACHE: _a, NODE_DISABLE_COMPILE_CACHE: _b, ...base } = process.env
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...base, ...env },
    encoding: 'utf8',
  })
  expect(child.status).toBe(0)
  return { result: JSON.parse(child.stdout), stderr: child.stderr }
}

/** Every file under `dir`, recursively. */
const filesUnder = (dir: string): string[] =>
  readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => e.name)

describe('compileCacheDir', () => {
  it('is under XDG_CACHE_HOME, else ~/.cache; never a relative path, never the temp dir', () => {
    expect(compileCacheDir({ XDG_CACHE_HOME: '/c', HOME: '/h' })).toBe(
      '/c/digicap/node-compile-cache',
    )
    expect(compileCacheDir({ HOME: '/h' })).toBe('/h/.cache/digicap/node-compile-cache')
    expect(compileCacheDir({ XDG_CACHE_HOME: 'rel', HOME: '/h' })).toBe(
      '/h/.cache/digicap/node-compile-cache',
    )
    expect(compileCacheDir({ HOME: 'rel' })).toBeUndefined()
    expect(compileCacheDir({})).toBeUndefined()
  })
})

describe('enableCompileCache', () => {
  it('makes a 0700 directory of its own and leaves the compiled code there at exit', () => {
    const home = join(tmp, 'fresh')
    const { result, stderr } = enableIn({ XDG_CACHE_HOME: home })
    const dir = join(home, 'digicap/node-compile-cache')
    expect(result).toEqual({ status: 'enabled', directory: dir })
    expect(stderr).toBe('')
    expect(statSync(dir).mode & 0o777).toBe(0o700)
    expect(filesUnder(dir).length).toBeGreaterThan(0)
  })

  it('refuses a directory others can write, a link, or one of another user, with one line', () => {
    const open = join(tmp, 'open')
    mkdirSync(join(open, 'digicap/node-compile-cache'), { recursive: true })
    chmodSync(join(open, 'digicap/node-compile-cache'), 0o777)
    const linked = join(tmp, 'linked')
    mkdirSync(join(linked, 'digicap'), { recursive: true })
    mkdirSync(join(tmp, 'elsewhere'), { mode: 0o700 })
    symlinkSync(join(tmp, 'elsewhere'), join(linked, 'digicap/node-compile-cache'))
    const cases: [string, RegExp][] = [
      [open, /mode 777, not 700/],
      [linked, /a symbolic link/],
    ]
    if (process.getuid?.() === 0) {
      // root can give a directory away: the case of a directory another user made first
      const theirs = join(tmp, 'theirs')
      mkdirSync(join(theirs, 'digicap/node-compile-cache'), { recursive: true, mode: 0o700 })
      chownSync(join(theirs, 'digicap/node-compile-cache'), 65534, 65534)
      cases.push([theirs, /owned by uid 65534, not 0/])
    }
    for (const [home, reason] of cases) {
      const dir = join(home, 'digicap/node-compile-cache')
      const { result, stderr } = enableIn({ XDG_CACHE_HOME: home })
      expect(result.status).toBe('skipped')
      expect(result.reason).toMatch(reason)
      expect(stderr).toMatch(/^test: not using the compile cache .*another user could put code/)
      expect(stderr.trim().split('\n')).toHaveLength(1)
      expect(filesUnder(dir)).toEqual([]) // Node wrote nothing there
    }
    expect(filesUnder(join(tmp, 'elsewhere'))).toEqual([])
  })

  it('never fails the command: no home, a file in the way, the user’s own NODE_* settings', () => {
    writeFileSync(join(tmp, 'file'), 'x')
    const blocked = enableIn({ XDG_CACHE_HOME: join(tmp, 'file'), HOME: undefined })
    expect(blocked.result).toMatchObject({ status: 'skipped', reason: 'ENOTDIR' })
    expect(blocked.stderr).toBe('')
    const none = enableIn({ XDG_CACHE_HOME: undefined, HOME: undefined })
    expect(none.result).toEqual({ status: 'skipped', reason: 'no home or cache directory' })
    const own = join(tmp, 'own')
    expect(enableIn({ NODE_COMPILE_CACHE: own }).result).toEqual({ status: 'already' })
    expect(filesUnder(own).length).toBeGreaterThan(0) // Node's, where the user asked
    const off = enableIn({ NODE_DISABLE_COMPILE_CACHE: '1', XDG_CACHE_HOME: join(tmp, 'off') })
    expect(off.result).toEqual({ status: 'disabled' })
  })
})

describe('the entry points', () => {
  it.each(['pi-node', 'executor-node'])('%s fills its cache, and runs with none', (app) => {
    const bin = join(repo, `apps/${app}/bin/${app}.js`)
    const home = join(tmp, `app-${app}`)
    const run = (env: Record<string, string | undefined>) => {
      const { NODE_COMPILE_CACHE: _a, NODE_DISABLE_COMPILE_CACHE: _b, ...base } = process.env
      return spawnSync(process.execPath, [bin, '--version'], {
        env: { ...base, ...env },
        encoding: 'utf8',
      })
    }
    const cached = run({ XDG_CACHE_HOME: home })
    expect(cached.status).toBe(0)
    expect(cached.stderr).toBe('')
    expect(filesUnder(join(home, 'digicap/node-compile-cache')).length).toBeGreaterThan(0)
    writeFileSync(join(tmp, `blocked-${app}`), 'x')
    const none = run({ XDG_CACHE_HOME: join(tmp, `blocked-${app}`), HOME: undefined })
    expect(none.status).toBe(0)
    expect(none.stdout).toBe(cached.stdout)
  })
})

describe('the systemd units', () => {
  it.each(['pi-node', 'executor-node'])('%s runs its daemon without a compile cache', (app) => {
    // The service user's home is the data folder it can write: code cached there would run
    // without being the install that verify-install and the release PCR vouch for.
    const unit = readFileSync(join(repo, `apps/${app}/deploy/${app}.service`), 'utf8')
    const env = Object.fromEntries(
      [...unit.matchAll(/^Environment=([A-Z_]+)=(.*)$/gm)].map((m) => [m[1], m[2]]),
    )
    expect(env.NODE_DISABLE_COMPILE_CACHE).toBe('1')
    const home = join(tmp, `unit-${app}`)
    mkdirSync(home)
    const bin = join(repo, `apps/${app}/bin/${app}.js`)
    const { NODE_COMPILE_CACHE: _a, XDG_CACHE_HOME: _b, ...base } = process.env
    const child = spawnSync(process.execPath, [bin, '--version'], {
      env: { ...base, HOME: home, NODE_DISABLE_COMPILE_CACHE: env.NODE_DISABLE_COMPILE_CACHE },
      encoding: 'utf8',
    })
    expect(child.status).toBe(0)
    expect(readdirSync(home)).toEqual([]) // no .cache made in the service's home
  })
})
