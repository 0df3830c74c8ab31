export type CompileCacheResult =
  | { status: 'enabled'; directory: string }
  | { status: 'already' | 'disabled' }
  | { status: 'skipped'; reason: string; directory?: string }
/**
 * The directory: `$XDG_CACHE_HOME/digicap/node-compile-cache`, else
 * `$HOME/.cache/digicap/node-compile-cache`; undefined without an absolute one of those.
 */
export declare function compileCacheDir(env?: NodeJS.ProcessEnv): string | undefined
/**
 * Why `dir` must not hold code this process runs, or undefined when it may: it must be a
 * directory (not a link to one), owned by this user, with no group or other rights, writable.
 */
export declare function unsafeCacheDir(dir: string): string | undefined
/** Turns Node's compile cache on in this user's own directory; never throws (ADR 0046). */
export declare function enableCompileCache(
  name: string,
  env?: NodeJS.ProcessEnv,
): CompileCacheResult
