import { defineConfig } from 'tsup'

export default defineConfig({
  // `policy-help`: the grammar's help text alone, for every command's --help (no codecs).
  entry: [
    'src/index.ts',
    'src/compiler.ts',
    'src/light.ts',
    'src/testing.ts',
    'src/policy-help.ts',
  ],
  format: ['esm'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node22',
})
