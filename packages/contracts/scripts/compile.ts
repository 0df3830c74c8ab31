/** Compiles contracts/*.sol with the pinned solc and writes src/generated/. Run: `pnpm compile`. */
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { generate } from './generate.ts'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const started = performance.now()
const files = generate(join(root, 'contracts'))
mkdirSync(join(root, 'src/generated'), { recursive: true })
for (const [name, text] of Object.entries(files))
  writeFileSync(join(root, 'src/generated', name), text)
console.log(
  `compiled in ${Math.round(performance.now() - started)} ms: ${Object.keys(files).join(', ')}`,
)
