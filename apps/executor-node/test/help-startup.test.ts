/**
 * `--help` and `--version` load the command declarations only: no executor, sandboxes,
 * keyguard, helia, libp2p or ethers (each handler imports those itself). A module hook in the
 * child lists every file it resolves.
 */
import { expect, it } from 'vitest'
import { runListingModules } from './helpers/cli.ts'

// Workspace packages resolve to their folders (packages/owner/dist/…), npm ones to node_modules.
// capsule-core's codecs and curves neither: its light entry names the errors (ADR 0046).
const HEAVY =
  /(@digicap|packages)\/(owner|keyguard|p2p|executor|contracts|tpm|sdk)\/|helia|libp2p|ethers|executor-node\/src\/executor-node\.ts|capsule-core\/dist\/index\.js|\/(cborg|@noble\/curves)\//

it.each([
  '--help',
  'run --help',
  '--version',
])('executor-node %s loads no heavy module', async (line) => {
  const { code, loaded: files } = await runListingModules(line.split(' '))
  expect(code).toBe(0)
  expect(files.some((f) => f.includes('/commands/run.ts'))).toBe(true)
  expect(files.filter((f) => HEAVY.test(f))).toEqual([])
})
