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
import { createReadStream } from 'node:fs'
import { readdir, readFile, readlink, stat } from 'node:fs/promises'
import { join, relative, sep } from 'node:path'
import { DigicapError, type DigicapErrorOptions } from '@digicap/capsule-core'

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

/** Files at most this large are read whole (one syscall) instead of streamed. */
const WHOLE_FILE = 1 << 20
/** Files hashed at once: the walk is bound by per-file syscalls, not by SHA-256. */
const HASHING = 16

async function sha256File(path: string, size: number): Promise<string> {
  const h = createHash('sha256')
  if (size <= WHOLE_FILE) h.update(await readFile(path))
  else for await (const chunk of createReadStream(path)) h.update(chunk as Buffer)
  return `sha256:${h.digest('hex')}`
}

/** Every regular file and symlink under `root`, by relative '/'-path, with its entry. */
export async function digestTree(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  const files: { rel: string; path: string }[] = []
  async function walk(dir: string): Promise<void> {
    const entries = await readdir(dir, { withFileTypes: true })
    const below: Promise<void>[] = []
    for (const entry of entries) {
      const path = join(dir, entry.name)
      const rel = relative(root, path).split(sep).join('/')
      if (entry.isSymbolicLink()) out[rel] = `symlink:${await readlink(path)}`
      else if (entry.isDirectory()) below.push(walk(path))
      else if (entry.isFile()) files.push({ rel, path })
      else out[rel] = 'special'
    }
    await Promise.all(below)
  }
  await walk(root)
  let next = 0
  async function hashing(): Promise<void> {
    while (next < files.length) {
      const { rel, path } = files[next++] as { rel: string; path: string }
      out[rel] = await sha256File(path, (await stat(path)).size)
    }
  }
  await Promise.all(Array.from({ length: HASHING }, hashing))
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
