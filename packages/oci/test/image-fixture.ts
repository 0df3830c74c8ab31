/**
 * Test images built here, no network: tar layers made with the system `tar` from files
 * written by the test (fixed mtimes), optionally gzipped, then a config, a manifest and an
 * index.json with a ref name, as `skopeo copy` would leave them.
 */
import { execFileSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gzipSync, zstdCompressSync } from 'node:zlib'
import { createLayout } from '../src/index.ts'

export interface Fixture {
  dir: string
  ref: string
  /** The plain layer blobs, in manifest order. */
  layers: { digest: string; bytes: Uint8Array; mediaType: string }[]
  manifestDigest: string
  /** Removes the layout. */
  dispose(): Promise<void>
}

const sha = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}`

async function tarOf(files: Record<string, Uint8Array | string>): Promise<Uint8Array> {
  const root = await mkdtemp(join(tmpdir(), 'oci-fixture-files-'))
  for (const [name, content] of Object.entries(files)) {
    await mkdir(join(root, name, '..'), { recursive: true })
    await writeFile(join(root, name), content)
  }
  const out = join(root, 'layer.tar')
  execFileSync('tar', [
    '--sort=name',
    '--mtime=2026-01-01 00:00Z',
    '--owner=0',
    '--group=0',
    '--numeric-owner',
    '--exclude=./layer.tar',
    '-C',
    root,
    '-cf',
    out,
    '.',
  ])
  try {
    return new Uint8Array(await readFile(out))
  } finally {
    await rm(root, { recursive: true, force: true })
  }
}

/**
 * Writes an image layout with one manifest: a gzip layer of a script and a CSV, a plain tar
 * layer of `extraBytes` random bytes (to cross many stream chunks), and with `zstd` a zstd layer.
 */
export async function buildFixture(
  options: { extraBytes?: number; ref?: string; zstd?: boolean } = {},
): Promise<Fixture> {
  const dir = await mkdtemp(join(tmpdir(), 'oci-fixture-'))
  const ref = options.ref ?? 'v1'
  const layout = await createLayout(dir)
  const tar1 = await tarOf({
    'app/run.sh': "#!/bin/sh\nawk -F, '{ s += $2 } END { print s }' /data/in.csv\n",
    'data/in.csv': 'a,1\nb,2\nc,3\n',
  })
  const tar2 = await tarOf({ 'blob/random.bin': randomBytes(options.extraBytes ?? 300_000) })
  const gz1 = new Uint8Array(gzipSync(tar1))
  const layers = [
    { bytes: gz1, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', diffId: sha(tar1) },
    { bytes: tar2, mediaType: 'application/vnd.oci.image.layer.v1.tar', diffId: sha(tar2) },
  ]
  if (options.zstd) {
    const tar3 = await tarOf({ 'etc/zstd.txt': 'a zstd layer\n' })
    layers.push({
      bytes: new Uint8Array(zstdCompressSync(tar3)),
      mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd',
      diffId: sha(tar3),
    })
  }
  const config = new TextEncoder().encode(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Cmd: ['/app/run.sh'] },
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    }),
  )
  const configBlob = await layout.writeBytes(config)
  const layerDescs: { mediaType: string; digest: string; size: number }[] = []
  for (const l of layers) {
    const blob = await layout.writeBytes(l.bytes)
    layerDescs.push({ mediaType: l.mediaType, digest: blob.digest, size: blob.size })
  }
  const manifest = new TextEncoder().encode(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: {
        mediaType: 'application/vnd.oci.image.config.v1+json',
        digest: configBlob.digest,
        size: configBlob.size,
      },
      layers: layerDescs,
    }),
  )
  const m = await layout.writeBytes(manifest)
  await layout.writeIndex({
    schemaVersion: 2,
    manifests: [
      {
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        digest: m.digest,
        size: m.size,
        annotations: { 'org.opencontainers.image.ref.name': ref },
      },
    ],
  })
  return {
    dir,
    ref,
    layers: layers.map((l, i) => ({
      digest: layerDescs[i]?.digest ?? '',
      bytes: l.bytes,
      mediaType: l.mediaType,
    })),
    manifestDigest: m.digest,
    dispose: () => rm(dir, { recursive: true, force: true }),
  }
}

/** The manifest of the image tagged `ref` in a layout, parsed. */
export async function manifestOf(dir: string, ref: string) {
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8'))
  const entry = index.manifests.find(
    (m: { annotations?: Record<string, string> }) =>
      m.annotations?.['org.opencontainers.image.ref.name'] === ref,
  )
  if (!entry) throw new Error(`no manifest tagged ${ref} in ${dir}`)
  const manifest = JSON.parse(
    await readFile(join(dir, 'blobs', 'sha256', entry.digest.slice(7)), 'utf8'),
  )
  return { entry, manifest }
}

/** A blob's bytes. */
export async function blobOf(dir: string, digest: string): Promise<Uint8Array> {
  return new Uint8Array(await readFile(join(dir, 'blobs', 'sha256', digest.slice(7))))
}
