#!/usr/bin/env node
/**
 * The Node version guard every Digicap entry point runs first. Plain JavaScript with no
 * imports beyond node:fs and node:url, on purpose: it must run on the old Node it refuses,
 * before anything that fails there (type stripping, newer built-ins) is loaded.
 *
 * As a module: `requireNode(name, packageJsonUrl)` checks `engines.node` (">=22",
 * ">=22.18") of that package.json and, on an older Node, prints one line and exits 1:
 *   executor-node: Node ≥ 22 required, found 20.20.2
 * As a script: `node require-node.js <name> [package.json]` does the same (for package.json
 * scripts such as `pnpm demo`).
 */
import { readFileSync } from 'node:fs'
import { pathToFileURL } from 'node:url'

/** The minimum version in an `engines.node` range of the form ">=X[.Y[.Z]]". */
export function minimumNode(range) {
  const m = /^\s*>=\s*v?(\d+)(?:\.(\d+))?(?:\.(\d+))?\s*$/.exec(String(range))
  if (!m) throw new Error(`engines.node must be ">=X[.Y[.Z]]", found ${JSON.stringify(range)}`)
  return [Number(m[1]), Number(m[2] ?? 0), Number(m[3] ?? 0)]
}

/** The one-line refusal for `found`, or undefined when `found` satisfies `range`. */
export function nodeVersionProblem(name, range, found) {
  const want = minimumNode(range)
  const have = String(found).replace(/^v/, '').split('.').map(Number)
  for (let i = 0; i < 3; i++) {
    const a = have[i] ?? 0
    const b = want[i]
    if (a > b) return undefined
    if (a < b) {
      const shown = want[2] ? want.join('.') : want[1] ? `${want[0]}.${want[1]}` : `${want[0]}`
      return `${name}: Node ≥ ${shown} required, found ${String(found).replace(/^v/, '')}`
    }
  }
  return undefined
}

/** Exits 1 with one line on stderr when this Node is older than the package's engines.node. */
export function requireNode(name, packageJsonUrl) {
  const pkg = JSON.parse(readFileSync(packageJsonUrl, 'utf8'))
  const problem = nodeVersionProblem(name, pkg.engines?.node, process.versions.node)
  if (problem !== undefined) {
    process.stderr.write(`${problem}\n`)
    process.exit(1)
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  requireNode(process.argv[2] || 'digicap', pathToFileURL(process.argv[3] || 'package.json'))
}
