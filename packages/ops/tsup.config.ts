import { defineConfig } from 'tsup'

export default defineConfig({
  // `logger` is its own entry: the apps' --help path loads it without prom-client.
  entry: [
    'src/index.ts',
    'src/logger.ts',
    'src/flags.ts',
    'src/status-link.ts',
    'src/rpc-providers.ts',
  ],
  format: ['esm'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node22',
})
