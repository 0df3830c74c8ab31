/**
 * esbuild plugins shared by the packages that ship a bundle (`@digicap/executor`'s one-shot node,
 * ADR 0052; `@digicap/pi-node`'s CLI, ADR 0103). Build-time only: run by tsup's `onSuccess`.
 */
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'

/**
 * What both bundles are built with: one ES module file (and its chunks) for Node 22+, no
 * whitespace or dead code (less to read and compile at start). The banner gives the CommonJS
 * dependencies inside an ES module bundle the `require` they call for Node's built-ins.
 */
export const NODE_ESM_BUNDLE = {
  bundle: true,
  minifyWhitespace: true,
  minifySyntax: true,
  format: 'esm',
  platform: 'node',
  target: 'node22',
  banner: {
    js: "import { createRequire as __digicapRequire } from 'node:module'; const require = __digicapRequire(import.meta.url);",
  },
} as const

/** An esbuild warning, the part read here. */
export interface BuildMessage {
  id: string
  text: string
  location: { file: string; lineText: string } | null
}

/** tsup's load-order import of one of its own chunks: `import "./chunk-X.js";` (or `../`). */
const CHUNK_ORDER_IMPORT = /^import\s*"(\.\/|(\.\.\/)+)chunk-[A-Z0-9]+\.js";?$/

/**
 * Fails a bundle's build on any warning but esbuild dropping tsup's `import "./chunk-X.js"`
 * lines (they only order loading, in packages marked `sideEffects: false`: 41 of them in
 * pi-node's bundle). Those were hidden with the log level, and so would be a module with real
 * top-level effects dropped the same way, or any other warning.
 */
export function assertOnlyChunkOrderWarnings(bundle: string, warnings: readonly BuildMessage[]) {
  const others = warnings.filter(
    (w) =>
      w.id !== 'ignored-bare-import' ||
      !CHUNK_ORDER_IMPORT.test((w.location?.lineText ?? '').trim()),
  )
  if (others.length > 0)
    throw new Error(
      `${bundle}: ${others.length} esbuild warning(s):\n${others
        .map((w) => `  ${w.location?.file ?? '?'}: ${w.text}`)
        .join('\n')}`,
    )
}

/** The part of esbuild's plugin API used here (esbuild comes with tsup, not as a dependency). */
export interface PluginHooks {
  onResolve(
    options: { filter: RegExp; namespace?: string },
    resolve: (args: ResolveArgs) => Promise<Resolved | undefined>,
  ): void
  resolve(path: string, options: Omit<ResolveArgs, 'path'>): Promise<Resolved>
  onLoad(
    options: { filter: RegExp; namespace?: string },
    load: (args: {
      path: string
    }) => Promise<{ contents: string; loader: 'js' | 'ts'; resolveDir: string } | undefined>,
  ): void
}

export interface Resolved {
  path: string
  external?: boolean
  sideEffects?: boolean
  namespace?: string
}

export interface ResolveArgs {
  path: string
  kind: string
  resolveDir: string
  importer?: string | undefined
  pluginData?: unknown
}

const HELIA_LOOKUP = 'createRequire(import.meta.url).resolve("helia")'

/**
 * `@digicap/p2p` loads helia's `Helia` class by its file path (its package entry would load
 * libp2p's whole default set-up, see p2p's `load-helia.ts`), which a bundler cannot follow and
 * which, run from the bundle, would resolve `helia` from this package (not a dependency). The
 * two imports become imports of the files themselves, so they are bundled.
 */
export function heliaByPath(found: { count: number }) {
  return {
    name: 'helia-by-path',
    setup(b: PluginHooks) {
      b.onLoad({ filter: /[\\/]p2p[\\/]dist[\\/][^\\/]+\.js$/ }, async (args: { path: string }) => {
        const text = await readFile(args.path, 'utf8')
        if (!text.includes(HELIA_LOOKUP)) return undefined
        const dir = dirname(createRequire(args.path).resolve('helia'))
        const out = text
          .replace(HELIA_LOOKUP, '""')
          .replace('import(file("helia.js"))', `import(${JSON.stringify(join(dir, 'helia.js'))})`)
          .replace(
            'import(file("version.js"))',
            `import(${JSON.stringify(join(dir, 'version.js'))})`,
          )
        if (out.includes('import(file('))
          throw new Error(`helia-by-path: unknown layout in ${args.path}`)
        found.count++
        return { contents: out, loader: 'js', resolveDir: dirname(args.path) }
      })
    },
  }
}
