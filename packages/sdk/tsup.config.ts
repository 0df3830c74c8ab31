import { defineConfig } from 'tsup'

export default defineConfig({
  // Two entries so that `import '@digicap/sdk'` (receive, networks) never loads the executor.
  entry: ['src/index.ts', 'src/run.ts', 'src/seal.ts'],
  format: ['esm'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node22',
  external: ['@digicap/executor', '@digicap/executor/node', '@digicap/owner'],
})
