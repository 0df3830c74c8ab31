import { defineConfig } from 'tsup'
import { buildOneShotBundle } from './build/one-shot-bundle.ts'

export default defineConfig({
  // The sandbox workers are separate entries: the host starts them by URL next to the bundle
  // (see sandboxWorkerUrl in src/sandbox/worker-host.ts), so the names stay flat.
  entry: {
    index: 'src/index.ts',
    node: 'src/node/index.ts',
    'run-socket': 'src/node/run-socket/index.ts',
    run: 'src/run/index.ts',
    'quickjs-worker': 'src/sandbox/quickjs/worker.ts',
    'wasi-worker': 'src/sandbox/wasi/worker.ts',
  },
  format: ['esm'],
  dts: {
    entry: {
      index: 'src/index.ts',
      node: 'src/node/index.ts',
      'run-socket': 'src/node/run-socket/index.ts',
      run: 'src/run/index.ts',
      'one-shot': 'src/one-shot.ts',
    },
  },
  sourcemap: true,
  clean: true,
  target: 'node22',
  // `dist/one-shot.js`: the one-shot run's node as one bundle (ADR 0052), after the entries.
  onSuccess: () => buildOneShotBundle(process.cwd()),
})
