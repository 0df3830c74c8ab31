/**
 * Builds `dist/cli-bundle.js`, what the `pi-node` binary runs (ADR 0103), after tsup's own build:
 * the CLI and every package it uses in one esbuild bundle, code split so that what a command
 * loads later (the node for `serve`, ethers for `recover`, the OCI modules for image capsules)
 * sits in chunks loaded on first use. One copy of every package, so no class is loaded twice.
 */
import { createRequire } from 'node:module'
import { join } from 'node:path'
import {
  assertOnlyChunkOrderWarnings,
  heliaByPath,
  NODE_ESM_BUNDLE,
} from '../../../scripts/esbuild-plugins.ts'

/** Loaded as packages: solc runs only in the policy compiler's child process, which loads it. */
const CLI_EXTERNAL = ['solc']

export async function buildCliBundle(packageDir: string): Promise<void> {
  const tsup = createRequire(join(packageDir, 'package.json')).resolve('tsup')
  const esbuild = await import(createRequire(tsup).resolve('esbuild'))
  const found = { count: 0 }
  const result = await esbuild.build({
    entryPoints: { 'cli-bundle': join(packageDir, 'src/cli.ts') },
    // beside tsup's entries: `new URL('../package.json', import.meta.url)` still names the
    // package's own file, and the policy compiler resolves `@digicap/contracts/compiler` from here
    outdir: join(packageDir, 'dist'),
    ...NODE_ESM_BUNDLE,
    splitting: true,
    chunkNames: 'cli-bundle-[hash]',
    external: CLI_EXTERNAL.flatMap((p) => [p, `${p}/*`]),
    plugins: [heliaByPath(found)],
    metafile: true,
    logLevel: 'silent', // its warnings are checked below, its errors thrown
  })
  assertOnlyChunkOrderWarnings('pi-node bundle', result.warnings)
  if (found.count !== 1)
    throw new Error(`pi-node bundle: helia's class lookup found ${found.count} times, not once`)
  const inputs = Object.keys(result.metafile.inputs).length
  if (inputs < 100) throw new Error(`pi-node bundle: only ${inputs} inputs`)
}
