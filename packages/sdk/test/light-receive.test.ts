/**
 * The receive side is light: loading `@digicap/sdk` (the built entry, as a user gets it)
 * loads no executor, no solc and no anvil, and the package does not depend on the executor
 * (an optional peer, for `@digicap/sdk/run` only).
 */
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')

function modulesLoadedBy(entry: string): string[] {
  const script = `
    import { registerHooks } from 'node:module'
    const seen = []
    registerHooks({ resolve(s, c, next) { const r = next(s, c); seen.push(r.url); return r } })
    await import(${JSON.stringify(entry)})
    process.stdout.write(JSON.stringify(seen))`
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    cwd: root,
    encoding: 'utf8',
  })
  return JSON.parse(out) as string[]
}

describe('the receive path', () => {
  it('imports no executor, solc or anvil (the built entry)', () => {
    const urls = modulesLoadedBy('@digicap/sdk')
    expect(urls.some((u) => u.includes('/capsule-core/'))).toBe(true) // the hook saw the graph
    expect(urls.filter((u) => /\/executor\/|[/@]solc\/|anvil|quickjs|wasi_shim/.test(u))).toEqual(
      [],
    )
  })

  it('`@digicap/sdk/run` does load the executor (the check above can fail)', () => {
    expect(modulesLoadedBy('@digicap/sdk/run').some((u) => u.includes('/executor/'))).toBe(true)
  })

  it('`@digicap/sdk/seal` loads no executor either (the code-bundle format is capsule-core’s)', () => {
    const urls = modulesLoadedBy('@digicap/sdk/seal')
    expect(urls.some((u) => u.includes('/owner/'))).toBe(true)
    expect(urls.filter((u) => /\/executor\/|quickjs|wasi_shim/.test(u))).toEqual([])
  })

  it('has the executor only as an optional peer dependency', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
    expect(Object.keys(pkg.dependencies)).not.toContain('@digicap/executor')
    expect(pkg.peerDependenciesMeta['@digicap/executor']).toEqual({ optional: true })
  })
})
