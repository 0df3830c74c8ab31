import { defineConfig } from 'tsup'
import { buildCliBundle } from './build/cli-bundle.ts'

export default defineConfig({
  entry: ['src/index.ts', 'src/cli.ts'],
  format: ['esm'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node22',
  // `dist/cli-bundle.js`: what `bin/pi-node.js` runs, the CLI as one bundle (ADR 0103).
  onSuccess: () => buildCliBundle(process.cwd()),
})
