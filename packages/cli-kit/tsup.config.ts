import { defineConfig } from 'tsup'

export default defineConfig({
  // `job-socket` is its own entry: a CLI asks its daemon before it loads anything else.
  entry: ['src/index.ts', 'src/job-socket.ts'],
  format: ['esm'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node22',
})
