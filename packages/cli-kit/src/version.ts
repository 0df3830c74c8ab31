/** `--version`: the app's name and version (from its package.json) and the Node running it. */
import { readFileSync } from 'node:fs'
import { EXIT, type Io, jsonReplacer } from './output.ts'

/** The flags every CLI answers with its version. */
export const VERSION_FLAGS: readonly string[] = ['--version', '-V']

/**
 * Prints `<name> <version> (node <version>)` on stdout, or under `json` one document
 * `{ name, version, node }`; returns {@link EXIT}.ok.
 *
 * @param packageJsonUrl - the app's package.json, e.g. `new URL('../package.json', import.meta.url)`.
 */
export function printVersion(io: Io, name: string, packageJsonUrl: URL, json: boolean): number {
  const { version } = JSON.parse(readFileSync(packageJsonUrl, 'utf8')) as { version: string }
  const node = process.versions.node
  io.stdout.write(
    json
      ? `${JSON.stringify({ name, version, node }, jsonReplacer)}\n`
      : `${name} ${version} (node ${node})\n`,
  )
  return EXIT.ok
}
