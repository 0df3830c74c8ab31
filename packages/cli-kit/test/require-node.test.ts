/**
 * The Node version guard every entry point runs first. Spawned for real: with an older Node
 * (the machine's system Node 20 when there is one) each entry point must print one line,
 * `<name>: Node ≥ X required, found <version>`, and exit 1 — before anything that needs a
 * newer Node is loaded.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { minimumNode, nodeVersionProblem } from '../bin/require-node.js'

const repo = fileURLToPath(new URL('../../../', import.meta.url))
const GUARD = join(repo, 'packages/cli-kit/bin/require-node.js')
const tmp = mkdtempSync(join(tmpdir(), 'cli-kit-node-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

/** A Node older than 22 on this machine (e.g. the system /usr/bin/node), if any. */
function olderNode(): { path: string; version: string } | undefined {
  const dirs = ['/usr/bin', '/usr/local/bin', '/bin', ...(process.env.PATH ?? '').split(delimiter)]
  for (const dir of dirs) {
    const path = join(dir, 'node')
    if (!existsSync(path)) continue
    const version = execFileSync(path, ['-p', 'process.versions.node'], { encoding: 'utf8' }).trim()
    if (Number(version.split('.')[0]) < 22) return { path, version }
  }
  return undefined
}

describe('nodeVersionProblem', () => {
  it('reads ">=X[.Y[.Z]]" and compares numerically, not as text', () => {
    expect(minimumNode('>=22')).toEqual([22, 0, 0])
    expect(minimumNode('>= 22.18')).toEqual([22, 18, 0])
    expect(() => minimumNode('^22')).toThrow(/engines.node/)
    expect(nodeVersionProblem('x', '>=22', '20.20.2')).toBe('x: Node ≥ 22 required, found 20.20.2')
    expect(nodeVersionProblem('x', '>=22.18', 'v22.9.0')).toBe(
      'x: Node ≥ 22.18 required, found 22.9.0',
    )
    expect(nodeVersionProblem('x', '>=22', '22.0.0')).toBeUndefined()
    expect(nodeVersionProblem('x', '>=22.18', '22.18.0')).toBeUndefined()
    expect(nodeVersionProblem('x', '>=22', '100.0.0')).toBeUndefined()
  })
})

describe('every entry point on an older Node', () => {
  const old = olderNode()
  const entries: [string, string[], string][] = [
    ['executor-node', [join(repo, 'apps/executor-node/bin/executor-node.js'), '--help'], '22'],
    ['pi-node', [join(repo, 'apps/pi-node/bin/pi-node.js'), 'status'], '22'],
    ['pnpm demo', [join(repo, 'apps/demo/bin/demo.js'), '--json'], '22.18'],
    ['pnpm demo', [GUARD, 'pnpm demo', join(repo, 'apps/demo/package.json')], '22.18'],
  ]

  it.each(entries)('%s: one line on stderr, nothing on stdout, exit 1', (name, args, want) => {
    // Without an old Node here, the same guard refuses this Node through a package.json that
    // asks for a future one (the same code path, a different version in the message).
    let node = process.execPath
    let found = process.versions.node
    let argv = args
    let wanted = want
    if (old) {
      node = old.path
      found = old.version
    } else {
      const pkg = join(tmp, 'package.json')
      writeFileSync(pkg, JSON.stringify({ engines: { node: '>=999' } }))
      argv = [GUARD, name, pkg]
      wanted = '999'
    }
    const r = spawnSync(node, argv, { encoding: 'utf8', cwd: repo })
    expect(r.stderr).toBe(`${name}: Node ≥ ${wanted} required, found ${found}\n`)
    expect(r.stdout).toBe('')
    expect(r.status).toBe(1)
  })

  it('passes on this Node: the entry point runs', () => {
    const r = spawnSync(
      process.execPath,
      [GUARD, 'pnpm demo', join(repo, 'apps/demo/package.json')],
      {
        encoding: 'utf8',
      },
    )
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
  })
})
