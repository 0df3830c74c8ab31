/**
 * `--help` and `--version` load the command declarations only: no pi-node library, owner
 * pipeline, keyguard, helia, libp2p or ethers (each handler imports those itself). A module
 * hook in the child lists every file it resolves. (`status`'s own graph: cli.test.ts.)
 */
import { expect, it } from 'vitest'
import { HEAVY_MODULES, runCliListingModules } from './helpers/cli.ts'

// Beyond what no light command loads: `--help` loads no handler's library either, nor
// capsule-core's codecs and curves (its light entry is enough for errors and flags, ADR 0046).
const HANDLER_LIBRARIES =
  /(@digicap|packages)\/(owner|keyguard|tpm)\/|capsule-core\/dist\/index\.js|\/(cborg|@noble\/curves)\//

it.each([
  '--help',
  'seal --help',
  '--version',
])('pi-node %s loads no heavy module', async (line) => {
  const r = await runCliListingModules(line.split(' '))
  expect(r.code).toBe(0)
  expect(r.loaded.some((f) => f.includes('/commands/seal.ts'))).toBe(true)
  expect(r.loaded.filter((f) => HEAVY_MODULES.test(f) || HANDLER_LIBRARIES.test(f))).toEqual([])
})
