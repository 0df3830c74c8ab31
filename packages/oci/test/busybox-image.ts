/**
 * A small runnable image for tests, demo and bench, built here with no network: Debian's
 * static busybox (`busybox-static`, /bin/busybox) with a few applet links, plus the files
 * given, one gzip layer, in an OCI layout. Node builtins and `tar` only, so any package's tests
 * can import it without loading a second copy of @digicap/oci.
 */
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import {
  chmod,
  copyFile,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  symlink,
  writeFile,
} from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'

export const BUSYBOX = '/bin/busybox'
const APPLETS = [
  'sh',
  'awk',
  'cat',
  'echo',
  'sleep',
  'id',
  'grep',
  'touch',
  'ls',
  'head',
  'wc',
  'sort',
  'dd',
  'yes',
]

export interface BusyboxImageInit {
  /** Files added to the rootfs (path without leading slash → content), e.g. a script. */
  files?: Record<string, string | Uint8Array>
  /** The image config's `config` object (Cmd, User, Labels, …). */
  config: Record<string, unknown>
  /** Symbolic links added to the rootfs (path without leading slash → target). */
  links?: Record<string, string>
  /** Extra uncompressed bytes (a random file) to make the image larger. */
  padBytes?: number
  ref?: string
}

const sha = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}`

/**
 * Folders 0755, files 0755 when executable else 0644: the layer's modes (and so its digest) do
 * not depend on the builder's umask (the demo builds under 077, which made /bin 0700: unusable
 * by the image's uid 65534).
 */
async function normalizeModes(root: string): Promise<void> {
  for (const name of ['', ...(await readdir(root, { recursive: true }))]) {
    const path = join(root, name)
    const info = await lstat(path)
    if (info.isSymbolicLink()) continue
    await chmod(path, info.isDirectory() || info.mode & 0o100 ? 0o755 : 0o644)
  }
}

async function writeBlob(dir: string, bytes: Uint8Array) {
  const digest = sha(bytes)
  await writeFile(join(dir, 'blobs', 'sha256', digest.slice(7)), bytes)
  return { digest, size: bytes.length }
}

/** Writes the layout into a new temp dir; returns it with its manifest digest. */
export async function buildBusyboxImage(
  init: BusyboxImageInit,
): Promise<{ dir: string; ref: string; manifestDigest: string; dispose(): Promise<void> }> {
  const ref = init.ref ?? 'v1'
  const root = await mkdtemp(join(tmpdir(), 'busybox-rootfs-'))
  const dir = await mkdtemp(join(tmpdir(), 'busybox-image-'))
  try {
    await mkdir(join(root, 'bin'), { recursive: true })
    await copyFile(BUSYBOX, join(root, 'bin', 'busybox'))
    for (const a of APPLETS) await symlink('busybox', join(root, 'bin', a))
    for (const [name, content] of Object.entries(init.files ?? {})) {
      await mkdir(join(root, name, '..'), { recursive: true })
      await writeFile(join(root, name), content, { mode: 0o755 })
    }
    for (const [name, target] of Object.entries(init.links ?? {})) {
      await symlink(target, join(root, name))
    }
    if (init.padBytes) {
      const { randomBytes } = await import('node:crypto')
      await writeFile(join(root, 'pad.bin'), randomBytes(init.padBytes))
    }
    await normalizeModes(root)
    const tarPath = join(dir, 'layer.tar')
    execFileSync('tar', [
      '--sort=name',
      '--mtime=2026-01-01 00:00Z',
      '--owner=0',
      '--group=0',
      '--numeric-owner',
      '-C',
      root,
      '-cf',
      tarPath,
      '.',
    ])
    const tar = new Uint8Array(await readFile(tarPath))
    await rm(tarPath)
    await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true })
    await writeFile(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}')
    const layer = await writeBlob(dir, new Uint8Array(gzipSync(tar, { level: 1 })))
    const config = await writeBlob(
      dir,
      new TextEncoder().encode(
        JSON.stringify({
          architecture: 'amd64',
          os: 'linux',
          config: init.config,
          rootfs: { type: 'layers', diff_ids: [sha(tar)] },
        }),
      ),
    )
    const manifest = await writeBlob(
      dir,
      new TextEncoder().encode(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
          layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...layer }],
        }),
      ),
    )
    await writeFile(
      join(dir, 'index.json'),
      JSON.stringify({
        schemaVersion: 2,
        manifests: [
          {
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            ...manifest,
            annotations: { 'org.opencontainers.image.ref.name': ref },
          },
        ],
      }),
    )
    return {
      dir,
      ref,
      manifestDigest: manifest.digest,
      dispose: () => rm(dir, { recursive: true, force: true }),
    }
  } finally {
    await rm(root, { recursive: true, force: true })
  }
}

/** The aggregation script of the tests and the demo: sums column 2 of the mounted CSV. */
export const SUM_CSV_SCRIPT =
  '#!/bin/sh\nawk -F, \'NR > 1 { s += $2; n++ } END { printf "rows=%d sum=%d\\n", n, s }\' /digicap/input\n'
