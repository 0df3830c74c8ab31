import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { generate } from '../scripts/generate.ts'

const root = join(import.meta.dirname, '..')

describe('generated artifacts', () => {
  it('match a fresh in-process compile of contracts/*.sol (run `pnpm compile` when this fails)', () => {
    const fresh = generate(join(root, 'contracts'))
    for (const [name, text] of Object.entries(fresh)) {
      const committed = readFileSync(join(root, 'src/generated', name), 'utf8')
      expect(committed === text, `src/generated/${name} is stale: run \`pnpm compile\``).toBe(true)
    }
    // One solc compile of every contract: ~25 s alone, several times that on the loaded CI box.
  }, 240_000)
})
