import { readdirSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'

/**
 * The committee contracts as @digicap/contracts ships them (`contracts/committee/`), plus the
 * NodeRegistry interface they import, keyed by source unit name for `compileSolidity`. Without
 * AttestationHub, which imports the core contracts (tests deploy it from the package's
 * artifacts with `deploySettlement`).
 */
export function committeeSources(): Record<string, string> {
  const root = dirname(createRequire(import.meta.url).resolve('@digicap/contracts/package.json'))
  const out: Record<string, string> = {}
  for (const f of readdirSync(join(root, 'contracts/committee')).filter(
    (x) => x.endsWith('.sol') && x !== 'AttestationHub.sol',
  ))
    out[`@digicap/contracts/committee/${f}`] = readFileSync(
      join(root, 'contracts/committee', f),
      'utf8',
    )
  out['@digicap/contracts/interfaces/INodeRegistry.sol'] = readFileSync(
    join(root, 'contracts/interfaces/INodeRegistry.sol'),
    'utf8',
  )
  return out
}
