/**
 * `--help` and `--version` load the command declarations only: no executor, sandboxes,
 * keyguard, helia, libp2p or ethers (each handler imports those itself). A module hook in the
 * child lists every file it resolves.
 */
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { expect, it } from 'vitest'

const CLI = fileURLToPath(new URL('../src/cli.ts', import.meta.url))

const HOOK = `data:text/javascript,${encodeURIComponent(`
import { registerHooks } from 'node:module'
const seen = []
registerHooks({ resolve(s, c, next) { const r = next(s, c); seen.push(r.url); return r } })
process.on('exit', () => process.stderr.write('\\nLOADED ' + JSON.stringify(seen) + '\\n'))
`)}`

function loaded(args: string[]): string[] {
  const r = spawnSync(
    process.execPath,
    ['--disable-warning=ExperimentalWarning', '--import', HOOK, CLI, ...args],
    { encoding: 'utf8' },
  )
  expect(r.status).toBe(0)
  return JSON.parse(r.stderr.split('\nLOADED ')[1] as string) as string[]
}

// Workspace packages resolve to their folders (packages/owner/dist/…), npm ones to node_modules.
const HEAVY =
  /(@digicap|packages)\/(owner|keyguard|p2p|executor|contracts|tpm|sdk)\/|helia|libp2p|ethers|executor-node\/src\/executor-node\.ts/

it.each(['--help', 'run --help', '--version'])('executor-node %s loads no heavy module', (line) => {
  const files = loaded(line.split(' '))
  expect(files.some((f) => f.includes('/commands/run.ts'))).toBe(true)
  expect(files.filter((f) => HEAVY.test(f))).toEqual([])
})
