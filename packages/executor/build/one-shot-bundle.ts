/**
 * Builds `dist/one-shot.js` (`@digicap/executor/one-shot`, ADR 0052) after tsup's own build: one
 * file with every dependency inlined but those that must stay one copy or are found by path.
 * Beside the sandbox workers in `dist/`, so `sandboxWorkerUrl` finds them as it does for the
 * other entries.
 */
import { readFile, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import {
  assertOnlyChunkOrderWarnings,
  heliaByPath,
  NODE_ESM_BUNDLE,
  type PluginHooks,
} from '../../../scripts/esbuild-plugins.ts'

/** Loaded by the importer as their own packages: one copy of their classes, files by path. */
export const ONE_SHOT_EXTERNAL = [
  '@digicap/capsule-core', // error classes shared with the CLI (instanceof)
  '@digicap/cli-kit', // the CLI's shell, already loaded, and its error classes
  '@jitl/quickjs-wasmfile-release-sync', // its wasm by import.meta.resolve
  'quickjs-emscripten-core',
  '@bjorn3/browser_wasi_shim',
  'tiny-secp256k1', // committee's vote checks: its wasm is read beside its own module (ADR 0098)
]

/**
 * noble's curves and hashes, when the copy a bundled module would get is the one this package
 * resolves (capsule-core's version): imported, not inlined, so capsule-core (outside) and the
 * bundle (keyguard's bip32, libp2p's keys) share one copy and build each curve's tables once.
 * ethers' older noble stays inside.
 */
function nobleShared(packageDir: string) {
  const own = createRequire(join(packageDir, 'package.json'))
  const rootOf = (name: string, file: string) => {
    const path = own.resolve(file)
    return path.slice(0, path.lastIndexOf(`/${name}/`) + name.length + 2)
  }
  const roots = [
    rootOf('@noble/curves', '@noble/curves/secp256k1.js'),
    rootOf('@noble/hashes', '@noble/hashes/sha2.js'),
  ]
  return {
    name: 'noble-shared',
    setup(b: PluginHooks) {
      b.onResolve({ filter: /^@noble\/(curves|hashes)\// }, async (args) => {
        if (args.pluginData === 'noble-shared') return undefined
        const { kind, resolveDir, importer } = args
        const r = await b.resolve(args.path, {
          kind,
          resolveDir,
          importer,
          pluginData: 'noble-shared',
        })
        return roots.some((root) => r.path.startsWith(root))
          ? { path: args.path, external: true }
          : undefined
      })
    },
  }
}

/**
 * ethers from its own bundle, `dist/one-shot-ethers.js`, imported only where used: no chunk the
 * start-up loads uses it (assertNoEthersAtStart), so it loads with the first transaction.
 */
const ETHERS_BUNDLE = './one-shot-ethers.js'

function ethersApart() {
  return {
    name: 'ethers-apart',
    setup(b: PluginHooks) {
      b.onResolve({ filter: /^ethers$/ }, async () => ({
        path: ETHERS_BUNDLE,
        external: true,
        sideEffects: false,
      }))
    },
  }
}

/** The executor's files that use ethers, imported on first use (ethers-parts.ts; the hub reads of open.ts). */
const ETHERS_PARTS =
  /[\\/]src[\\/](node[\\/]ethers-parts|node[\\/]verifier[\\/]ethers-chain|chain|delivery[\\/]grants)\.ts$/

/**
 * `@digicap/contracts` from its source files, and twice: esbuild puts each input file in one
 * chunk, and a file the start-up reaches (through contracts' index) that `ethers-parts.ts` also
 * uses (providers, the ethers signer, `connectDigicap`) lands in a chunk loaded at start, ethers'
 * import with it. The ethers parts import their own copy of contracts (namespace
 * `contracts-ethers`), so contracts' ethers users stay in their chunk (ADR 0052). The start-up's
 * copy (the account, the RPC quorum, the errors) uses no ethers.
 */
function contractsFromSource(packageDir: string) {
  const own = createRequire(join(packageDir, 'package.json'))
  const root = dirname(own.resolve('@digicap/contracts/package.json'))
  const source = join(root, 'src/index.ts')
  const namespace = 'contracts-ethers'
  return {
    name: 'contracts-from-source',
    setup(b: PluginHooks) {
      b.onResolve({ filter: /^@digicap\/contracts$/ }, async (args) =>
        args.importer !== undefined && ETHERS_PARTS.test(args.importer)
          ? { path: source, namespace }
          : { path: source },
      )
      // What contracts' files import, from the copy: its own files stay in the copy; ethers
      // goes to ethers-apart; the rest resolves as usual.
      b.onResolve({ filter: /.*/, namespace }, async (args) => {
        if (args.path === 'ethers') return undefined
        const r = await b.resolve(args.path, {
          kind: args.kind,
          resolveDir: args.resolveDir,
          importer: args.importer,
          pluginData: namespace,
        })
        return !r.external && r.path.startsWith(join(root, 'src')) ? { path: r.path, namespace } : r
      })
      b.onLoad({ filter: /.*/, namespace }, async (args) => ({
        contents: await readFile(args.path, 'utf8'),
        loader: 'ts',
        resolveDir: dirname(args.path),
      }))
    },
  }
}

/**
 * Fails the build when ethers is in a chunk the entry loads at start (statically): a run must
 * load it only when it sends a transaction (the chain-path grant, a registration).
 */
function assertNoEthersAtStart(metafile: Metafile): void {
  const entry = Object.keys(metafile.outputs).find((k) => k.endsWith('/one-shot.js')) as string
  const seen = new Set([entry])
  for (const out of seen) {
    for (const i of metafile.outputs[out]?.imports ?? []) {
      if (i.kind === 'import-statement' && !i.external) seen.add(i.path)
    }
  }
  const ethers = [...seen].filter(
    (out) =>
      metafile.outputs[out]?.imports.some((i) => i.path === ETHERS_BUNDLE) ||
      Object.keys(metafile.outputs[out]?.inputs ?? {}).some((i) => /[\\/]ethers[\\/]/.test(i)),
  )
  if (ethers.length > 0)
    throw new Error(`one-shot bundle: ethers loads at start, in ${ethers.join(', ')}`)
}

interface Metafile {
  inputs: Record<string, unknown>
  outputs: Record<
    string,
    {
      imports: { path: string; kind: string; external?: boolean }[]
      inputs: Record<string, unknown>
    }
  >
}

export async function buildOneShotBundle(packageDir: string): Promise<void> {
  const tsup = createRequire(join(packageDir, 'package.json')).resolve('tsup')
  const esbuild = await import(createRequire(tsup).resolve('esbuild'))
  const found = { count: 0 }
  const external = ONE_SHOT_EXTERNAL.flatMap((p) => [p, `${p}/*`])
  const result = await esbuild.build({
    entryPoints: { 'one-shot': join(packageDir, 'src/one-shot.ts') },
    outdir: join(packageDir, 'dist'),
    ...NODE_ESM_BUNDLE,
    // What loads later (gossipsub, kad-dht, the importer, helia's class, execa) in chunks of
    // their own.
    splitting: true,
    chunkNames: 'one-shot-[hash]',
    external,
    plugins: [
      heliaByPath(found),
      nobleShared(packageDir),
      contractsFromSource(packageDir),
      ethersApart(),
    ],
    metafile: true,
    logLevel: 'silent', // its warnings are checked below, its errors thrown
  })
  assertOnlyChunkOrderWarnings('one-shot bundle', result.warnings)
  // ONE_SHOT_META=<file>: esbuild's metafile, to see what the bundle holds (esbuild.github.io/analyze)
  if (process.env.ONE_SHOT_META)
    await writeFile(process.env.ONE_SHOT_META, JSON.stringify(result.metafile))
  if (found.count !== 1)
    throw new Error(`one-shot bundle: helia's class lookup found ${found.count} times, not once`)
  assertNoEthersAtStart(result.metafile)
  // ethers alone, one file: what the chunks above import as ETHERS_BUNDLE.
  await esbuild.build({
    stdin: { contents: "export * from 'ethers'", resolveDir: packageDir, loader: 'js' },
    outfile: join(packageDir, 'dist', ETHERS_BUNDLE),
    ...NODE_ESM_BUNDLE,
    logLevel: 'error',
  })
  const inputs = Object.keys(result.metafile.inputs).length
  if (inputs < 100) throw new Error(`one-shot bundle: only ${inputs} inputs`)
}
