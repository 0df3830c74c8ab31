import { defineConfig } from 'tsup'

export default defineConfig({
  // The sandbox workers are separate entries: the host starts them by URL next to the bundle.
  entry: ['src/index.ts', 'src/quickjs-worker.ts', 'src/wasi-worker.ts'],
  format: ['esm'],
  dts: { entry: 'src/index.ts' },
  sourcemap: true,
  clean: true,
  target: 'node22',
})
