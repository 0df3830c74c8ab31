/**
 * A folder of compiled policies keyed by what determines the bytecode: the source, the solc
 * version and the compiler settings. Generated policies repeat (the same expression gives the
 * same source), and a compile costs seconds of CPU on a Pi; a hit costs one file read. The
 * folder is the owner's own (in the 0700 data folder): whoever can write there can already
 * change the config's contract addresses.
 */
import { createHash } from 'node:crypto'
import { mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { writeJsonAtomic } from '@digicap/cli-kit'
import {
  COMPILER_SETTINGS,
  type CompiledPolicy,
  POLICY_SOURCE_NAME,
  SOLC_VERSION,
} from '@digicap/contracts/light'
import type { PolicyCompiler } from './types.ts'

function keyOf(source: string): string {
  return createHash('sha256')
    .update(JSON.stringify([SOLC_VERSION, COMPILER_SETTINGS, source]))
    .digest('hex')
}

/** `compile`, remembered in `dir`: a cached entry is used only if it is of the same source. */
export function cachedPolicyCompiler(dir: string, compile: PolicyCompiler): PolicyCompiler {
  return async (source) => {
    const file = join(dir, `${keyOf(source)}.json`)
    // a missing or unreadable entry is a miss (compiled again and rewritten)
    const hit = await readFile(file, 'utf8')
      .then((text) => JSON.parse(text) as CompiledPolicy)
      .catch(() => undefined)
    if (hit && hit.solcVersion === SOLC_VERSION && hit.sources?.[POLICY_SOURCE_NAME] === source) {
      return hit
    }
    const compiled = await compile(source)
    await mkdir(dir, { recursive: true, mode: 0o700 })
    await writeJsonAtomic(file, compiled).catch(() => {})
    return compiled
  }
}
