/**
 * `@digicap/executor/run` (the built entry, as a user gets it) loads what a run's open, run
 * and clean-up need and none of the node's libp2p, helia or ethers: a process that only opens
 * and runs stays small (bench/executor-op.ts measures it against `openFile`).
 */
import { execFileSync } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')

function modulesLoadedBy(entry: string, names: readonly string[] = []): string[] {
  const script = `
    import { registerHooks } from 'node:module'
    const seen = []
    registerHooks({ resolve(s, c, next) { const r = next(s, c); seen.push(r.url); return r } })
    const m = await import(${JSON.stringify(entry)})
    for (const name of ${JSON.stringify(names)})
      if (typeof m[name] !== 'function') throw new Error('missing ' + name)
    process.stdout.write(JSON.stringify(seen))`
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    cwd: root,
    encoding: 'utf8',
  })
  return JSON.parse(out) as string[]
}

/** What a run after the key release calls (bench/executor-op.ts). */
const RUN_STAGES = [
  'openJob',
  'plaintextRootOf',
  'runInSandbox',
  'createRunWorkspace',
  'defaultSandboxes',
  'resolveRuntime',
]
const NODE_MODULES = /[/@]libp2p|helia|[/@]ethers|@chainsafe|kad-dht|gossipsub/

describe('the run entry', () => {
  it('loads the open, the sandboxes and the workspace, and no libp2p, helia or ethers', () => {
    const urls = modulesLoadedBy('@digicap/executor/run', RUN_STAGES)
    expect(urls.some((u) => u.includes('/capsule-core/'))).toBe(true) // the hook saw the graph
    expect(urls.filter((u) => NODE_MODULES.test(u))).toEqual([])
  })

  it('the package index does load them (the check above can fail)', () => {
    expect(modulesLoadedBy('@digicap/executor').some((u) => NODE_MODULES.test(u))).toBe(true)
  })
})
