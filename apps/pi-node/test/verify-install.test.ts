/**
 * `pi-node verify-install`: a release manifest signed by the release key, checked against the
 * files on disk. Every way to change an install (a modified file, a removed one, an added
 * one, a re-pointed symlink, a manifest edited to match, a manifest signed by another key) is
 * refused with INSTALL_TAMPERED naming the file; the CLI exits 1 so ExecStartPre stops `serve`.
 */
import { generateKeyPairSync } from 'node:crypto'
import { mkdir, mkdtemp, rm, symlink, unlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createReleaseManifest, InstallTamperedError, verifyInstall } from '@digicap/cli-kit'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { runCli } from './helpers/cli.ts'

const release = generateKeyPairSync('ed25519')
const rawPublic = (release.publicKey.export({ format: 'der', type: 'spki' }) as Buffer)
  .subarray(12)
  .toString('hex')

let dir: string
let root: string
let manifestFile: string

async function refused(reason: string, file?: string): Promise<void> {
  const err = await verifyInstall(root, manifestFile, release.publicKey).catch((e: unknown) => e)
  expect(err).toBeInstanceOf(InstallTamperedError)
  expect((err as InstallTamperedError).code).toBe('INSTALL_TAMPERED')
  expect((err as InstallTamperedError).details.reason).toBe(reason)
  if (file !== undefined) {
    expect((err as InstallTamperedError).details.file).toBe(file)
    expect((err as Error).message).toContain(file)
  }
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pi-node-verify-'))
  root = join(dir, 'install')
  await mkdir(join(root, 'dist'), { recursive: true })
  await mkdir(join(root, 'node_modules', 'dep'), { recursive: true })
  await writeFile(join(root, 'dist', 'cli.js'), 'console.log("pi-node")\n')
  await writeFile(join(root, 'node_modules', 'dep', 'index.js'), 'export default 1\n')
  await symlink('dep', join(root, 'node_modules', 'alias'))
  manifestFile = join(dir, 'release.json')
  const manifest = await createReleaseManifest(root, '@digicap/pi-node@0.0.0', release.privateKey)
  await writeFile(manifestFile, JSON.stringify(manifest))
})

afterEach(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('verify-install', () => {
  it('accepts the released files, and refuses a modified one naming it (CLI: exit 1)', async () => {
    expect(await verifyInstall(root, manifestFile, release.publicKey)).toEqual({
      release: '@digicap/pi-node@0.0.0',
      files: 3,
    })
    await writeFile(join(root, 'node_modules', 'dep', 'index.js'), 'export default 2\n')
    await refused('modified', 'node_modules/dep/index.js')
    const r = await runCli([
      'verify-install',
      '--manifest',
      manifestFile,
      '--release-key',
      rawPublic,
      '--root',
      root,
    ])
    expect(r.code).toBe(1)
    expect(r.stderr).toContain('error[INSTALL_TAMPERED]')
    expect(r.stderr).toContain('node_modules/dep/index.js')
  })

  it('refuses a removed file, an added file and a re-pointed symlink', async () => {
    await writeFile(join(root, 'dist', 'extra.js'), 'steal()\n')
    await refused('unlisted', 'dist/extra.js')
    await unlink(join(root, 'dist', 'extra.js'))
    await unlink(join(root, 'node_modules', 'alias'))
    await symlink('/tmp', join(root, 'node_modules', 'alias'))
    await refused('modified', 'node_modules/alias')
    await unlink(join(root, 'dist', 'cli.js'))
    await refused('missing', 'dist/cli.js')
  })

  it('refuses a manifest edited to match, or signed by another key', async () => {
    const manifest = await createReleaseManifest(root, '@digicap/pi-node@0.0.0', release.privateKey)
    await writeFile(join(root, 'dist', 'cli.js'), 'evil()\n')
    const edited = { ...manifest, files: { ...manifest.files, 'dist/cli.js': 'sha256:00' } }
    await writeFile(manifestFile, JSON.stringify(edited))
    await refused('signature')
    const other = generateKeyPairSync('ed25519')
    const forged = await createReleaseManifest(root, '@digicap/pi-node@0.0.0', other.privateKey)
    await writeFile(manifestFile, JSON.stringify(forged))
    await refused('signature')
    await writeFile(manifestFile, '{"version":1')
    await refused('manifest')
  })
})
