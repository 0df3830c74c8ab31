/**
 * Node's on-disk compile cache for a Digicap command (ADR 0046): V8's code for every module the
 * command loads is kept between runs, so a second run deserializes instead of compiling.
 * Plain JavaScript with only node: imports, like require-node.js: the entry point calls it
 * before it imports anything else.
 *
 * The cache is code this process runs: whoever can write its directory can make the next run
 * execute their code as this user. So it lives in a directory of this user's own, never in
 * Node's default (`<tmpdir>/node-compile-cache`, which another local user can create first),
 * and it is used only when that directory is a real directory (not a symbolic link), owned by
 * this user, with no rights for group or others. Anything else (no home, a read-only home, an
 * unsafe directory, a Node without the API) leaves the run as it was, without the cache: the
 * cache never makes a command fail.
 */
import { accessSync, constants, lstatSync, mkdirSync } from 'node:fs'
import module from 'node:module'
import { isAbsolute, join } from 'node:path'

/**
 * The directory: `$XDG_CACHE_HOME/digicap/node-compile-cache`, else
 * `$HOME/.cache/digicap/node-compile-cache`; undefined without an absolute one of those.
 */
export function compileCacheDir(env = process.env) {
  const xdg = env.XDG_CACHE_HOME
  if (xdg && isAbsolute(xdg)) return join(xdg, 'digicap', 'node-compile-cache')
  const home = env.HOME
  if (home && isAbsolute(home)) return join(home, '.cache', 'digicap', 'node-compile-cache')
  return undefined
}

/**
 * Why `dir` must not hold code this process runs, or undefined when it may: it must be a
 * directory (not a link to one), owned by this user, with no group or other rights, writable.
 */
export function unsafeCacheDir(dir) {
  const st = lstatSync(dir)
  if (st.isSymbolicLink()) return 'a symbolic link'
  if (!st.isDirectory()) return 'not a directory'
  if (typeof process.getuid === 'function' && st.uid !== process.getuid()) {
    return `owned by uid ${st.uid}, not ${process.getuid()}`
  }
  if ((st.mode & 0o077) !== 0) return `mode ${(st.mode & 0o777).toString(8)}, not 700`
  accessSync(dir, constants.W_OK | constants.X_OK)
  return undefined
}

/**
 * Turns the compile cache on for this process. Returns what it did: `enabled` (with the
 * directory), `already` (NODE_COMPILE_CACHE set by the user: Node's own choice stands),
 * `disabled` (NODE_DISABLE_COMPILE_CACHE), or `skipped` with the reason. It writes one warning
 * line to stderr only when the directory exists but another user could write it.
 */
export function enableCompileCache(name, env = process.env) {
  try {
    if (typeof module.enableCompileCache !== 'function') {
      return { status: 'skipped', reason: 'this Node has no compile cache' }
    }
    if (env.NODE_DISABLE_COMPILE_CACHE) return { status: 'disabled' }
    if (env.NODE_COMPILE_CACHE) return { status: 'already' }
    const dir = compileCacheDir(env)
    if (dir === undefined) return { status: 'skipped', reason: 'no home or cache directory' }
    mkdirSync(dir, { recursive: true, mode: 0o700 })
    const unsafe = unsafeCacheDir(dir)
    if (unsafe !== undefined) {
      process.stderr.write(
        `${name}: not using the compile cache ${dir}: ${unsafe} (another user could put code there; remove it or chmod 700)\n`,
      )
      return { status: 'skipped', reason: unsafe, directory: dir }
    }
    const r = module.enableCompileCache(dir)
    const { ENABLED, ALREADY_ENABLED, DISABLED } = module.constants.compileCacheStatus
    if (r.status === ENABLED) return { status: 'enabled', directory: dir }
    if (r.status === ALREADY_ENABLED) return { status: 'already' }
    if (r.status === DISABLED) return { status: 'disabled' }
    return { status: 'skipped', reason: r.message ?? 'Node could not enable it', directory: dir }
  } catch (error) {
    return { status: 'skipped', reason: error?.code ?? String(error) }
  }
}
