/**
 * Release manifests: the SHA-256 of every file of an installed release (the app and its
 * dependencies; a symlink by its target), signed Ed25519 by the release key, and the check
 * `pi-node verify-install` runs before `serve` (systemd `ExecStartPre`).
 *
 * Format (version 1), one JSON file:
 * `{ "version": 1, "kind": "digicap/release-manifest", "release": "<name@version>",
 *    "files": { "<path relative to the install root, '/'-separated>": "sha256:<hex>" |
 *    "symlink:<target>", … }, "signature": "<hex Ed25519>" }`.
 * The signature covers `"digicap/release-manifest/v1\n"` followed by the JSON of the same object
 * without `signature`, keys in this order and `files` sorted by path.
 */
import { createHash, createPublicKey, type KeyObject, sign, verify } from 'node:crypto'
import {
  closeSync,
  fstatSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  readSync,
} from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join, relative, sep } from 'node:path'
import { DigicapError, type DigicapErrorOptions } from '@digicap/capsule-core/light'

/** The installed release differs from the signed manifest; `details.file` names the file. */
export class InstallTamperedError extends DigicapError {
  override name = 'InstallTamperedError'
  constructor(shortMessage: string, options: DigicapErrorOptions = {}) {
    super('INSTALL_TAMPERED', shortMessage, options)
  }
}

export const RELEASE_MANIFEST_KIND = 'digicap/release-manifest' as const
const DOMAIN = 'digicap/release-manifest/v1\n'

export interface ReleaseManifest {
  version: 1
  kind: typeof RELEASE_MANIFEST_KIND
  release: string
  files: Record<string, string>
  signature: string
}

/** Files at most this large are read whole (one read) instead of in chunks. */
const WHOLE_FILE = 1 << 20

function sha256File(path: string, chunk: Buffer): string {
  const h = createHash('sha256')
  const fd = openSync(path, 'r')
  try {
    if (fstatSync(fd).size <= WHOLE_FILE) h.update(readFileSync(fd))
    else {
      let n = readSync(fd, chunk, 0, chunk.length, null)
      for (; n > 0; n = readSync(fd, chunk, 0, chunk.length, null)) h.update(chunk.subarray(0, n))
    }
  } finally {
    closeSync(fd)
  }
  return `sha256:${h.digest('hex')}`
}

/**
 * Every regular file and symlink under `root`, by relative '/'-path, with its entry.
 * Synchronous calls, one file after the other: the walk is bound by per-file calls, and a
 * promise round-trip through libuv's pool per call costs more CPU than the call itself (with
 * the page cache cold, 16 files in flight were no faster). Only the CLIs call it
 * (sign-release, verify-install, init): their event loop has nothing else to do meanwhile.
 */
export async function digestTree(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  const chunk = Buffer.allocUnsafe(WHOLE_FILE)
  function walk(dir: string): void {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name)
      const rel = relative(root, path).split(sep).join('/')
      if (entry.isSymbolicLink()) out[rel] = `symlink:${readlinkSync(path)}`
      else if (entry.isDirectory()) walk(path)
      else if (entry.isFile()) out[rel] = sha256File(path, chunk)
      else out[rel] = 'special'
    }
  }
  walk(root)
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
}

function signedBytes(m: Omit<ReleaseManifest, 'signature'>): Buffer {
  const files = Object.fromEntries(
    Object.entries(m.files).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
  )
  return Buffer.from(
    DOMAIN + JSON.stringify({ version: m.version, kind: m.kind, release: m.release, files }),
    'utf8',
  )
}

/** Builds and signs the manifest of the release installed at `root` (the release process). */
export async function createReleaseManifest(
  root: string,
  release: string,
  releaseKey: KeyObject,
): Promise<ReleaseManifest> {
  const body = {
    version: 1 as const,
    kind: RELEASE_MANIFEST_KIND,
    release,
    files: await digestTree(root),
  }
  const signature = sign(null, signedBytes(body), releaseKey).toString('hex')
  return { ...body, signature }
}

/** An Ed25519 public key from 64 hex digits (raw) or a PEM SubjectPublicKeyInfo. */
export function releasePublicKey(text: string): KeyObject {
  const t = text.trim()
  try {
    if (/^[0-9a-fA-F]{64}$/.test(t)) {
      return createPublicKey({
        key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), Buffer.from(t, 'hex')]),
        format: 'der',
        type: 'spki',
      })
    }
    const key = createPublicKey(t)
    if (key.asymmetricKeyType !== 'ed25519') throw new Error('not ed25519')
    return key
  } catch (cause) {
    throw new InstallTamperedError('The release key is not an Ed25519 public key', {
      details: { reason: 'release-key' },
      hint: 'Give the release public key as 64 hex digits or a PEM file.',
      cause,
    })
  }
}

/**
 * Checks the release installed at `root` against the signed manifest at `manifestFile`.
 * @throws {InstallTamperedError} `reason`: `manifest` (unreadable, malformed), `signature`
 *   (not signed by the release key), `modified`, `missing` or `unlisted` with `details.file`.
 */
export async function verifyInstall(
  root: string,
  manifestFile: string,
  releaseKey: KeyObject,
): Promise<{ release: string; files: number }> {
  let m: ReleaseManifest
  try {
    m = JSON.parse(await readFile(manifestFile, 'utf8')) as ReleaseManifest
  } catch (cause) {
    throw new InstallTamperedError('The release manifest cannot be read', {
      details: { reason: 'manifest', manifestFile },
      cause,
    })
  }
  if (
    m?.version !== 1 ||
    m.kind !== RELEASE_MANIFEST_KIND ||
    typeof m.release !== 'string' ||
    typeof m.files !== 'object' ||
    m.files === null ||
    typeof m.signature !== 'string' ||
    !/^[0-9a-f]{128}$/.test(m.signature)
  ) {
    throw new InstallTamperedError('The release manifest is malformed', {
      details: { reason: 'manifest', manifestFile },
    })
  }
  if (!verify(null, signedBytes(m), releaseKey, Buffer.from(m.signature, 'hex'))) {
    throw new InstallTamperedError('The release manifest is not signed by the release key', {
      details: { reason: 'signature', manifestFile },
      hint: 'Reinstall the release from its published archive; do not start this install.',
    })
  }
  const found = await digestTree(root)
  for (const [file, digest] of Object.entries(m.files)) {
    const now = found[file]
    if (now === undefined) {
      throw tampered('missing', file, `A file of the release is missing: ${file}`)
    }
    if (now !== digest) {
      throw tampered('modified', file, `A file of the release was modified: ${file}`)
    }
  }
  for (const file of Object.keys(found)) {
    if (!(file in m.files)) {
      throw tampered('unlisted', file, `A file that is not part of the release was added: ${file}`)
    }
  }
  return { release: m.release, files: Object.keys(m.files).length }
}

function tampered(reason: string, file: string, message: string): InstallTamperedError {
  return new InstallTamperedError(message, {
    details: { reason, file },
    hint: 'The installed node software is not the released software: reinstall the release; do not start it.',
  })
}
