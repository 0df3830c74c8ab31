/**
 * The plaintext of a code capsule: code (one file or a folder) and the data, in the code-bundle
 * format of `@digicap/capsule-core` (the one the executor decodes).
 */
import { readdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join, relative, sep } from 'node:path'
import { encodeBundle } from '@digicap/capsule-core'
import { InputFileError } from '../errors.ts'

/** Encodes `{ entry, files, data }` into bundle bytes. Default: `encodeBundle` of capsule-core. */
export type BundleBytesEncoder = (bundle: {
  entry: string
  files: Record<string, Uint8Array>
  data: Uint8Array
}) => Uint8Array

/**
 * Reads `code` as bundle files: one file (stored under the name `entry`) or a folder (every
 * file under its relative path, `/`-separated).
 * @throws {InputFileError} if the code cannot be read or is neither a file nor a folder, or the
 *   folder holds a symbolic link or a special file (`details.file` names it): never left out
 *   silently, never followed out of the folder.
 */
export async function readCodeFiles(
  code: string,
  entry: string,
): Promise<Record<string, Uint8Array>> {
  const info = await stat(code).catch((cause) => {
    throw new InputFileError('Cannot read the code to seal', {
      cause,
      details: { code, reason: (cause as NodeJS.ErrnoException).code },
    })
  })
  if (info.isFile()) return { [entry]: await readFile(code) }
  if (!info.isDirectory()) {
    throw new InputFileError('The code is neither a file nor a folder', { details: { code } })
  }
  const files: Record<string, Uint8Array> = {}
  const entries = await readdir(code, { recursive: true, withFileTypes: true })
  for (const e of entries) {
    if (e.isDirectory()) continue
    const full = join(e.parentPath, e.name)
    const name = relative(code, full).split(sep).join('/')
    if (!e.isFile()) {
      // A link left out silently gives code that cannot run; followed, it could seal a file
      // from outside the folder. Either way the owner should decide: refuse, naming it.
      throw new InputFileError(
        e.isSymbolicLink()
          ? 'The code folder holds a symbolic link'
          : 'The code folder holds something that is not a file',
        {
          details: { code, file: name, kind: e.isSymbolicLink() ? 'symlink' : 'special' },
          hint: 'Copy the file into the folder instead of linking it, or remove it.',
        },
      )
    }
    files[name] = await readFile(full)
  }
  return files
}

/**
 * Writes the bundle of `code` + `data` to `output` (mode 0600), built in memory (its size is
 * capped by the bundle format).
 *
 * @throws {InputFileError} if the code or data cannot be read; `BundleFormatError`
 *   (`BUNDLE_FORMAT`) for a bad entry or file name.
 * @example
 * ```ts
 * await writeCodeBundle({ entry: 'main.js', code: 'app/', data: 'input.csv', output: 'bundle.bin' })
 * ```
 */
export async function writeCodeBundle(
  input: { entry: string; code: string; data: string; output: string },
  encode: BundleBytesEncoder = encodeBundle,
): Promise<void> {
  const data = await readFile(input.data).catch((cause) => {
    throw new InputFileError('Cannot read the file to seal', {
      cause,
      details: { file: input.data, reason: (cause as NodeJS.ErrnoException).code },
    })
  })
  const bytes = encode({
    entry: input.entry,
    files: await readCodeFiles(input.code, input.entry),
    data,
  })
  await writeFile(input.output, bytes, { mode: 0o600 })
}
