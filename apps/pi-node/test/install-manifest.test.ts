/**
 * `deploy/install-pi.sh`'s release manifest, on a small installed tree (`--from-prefix` of a
 * folder whose `@digicap/pi-node` is a link to this workspace's built app, and one dependency
 * file; installed-test.ts runs the same on the packed tree): the first install creates the
 * host release key (0600) and signs the tree (manifest 0644); a modified dependency file is
 * refused by `verify-install`, named; a re-run reinstalls into an emptied folder and signs the
 * same manifest (a file added beside the app is gone, not signed); a run that installs nothing
 * signs nothing, so a file added since stays refused; a manifest the release process signed is
 * taken only when it matches the tree, checked again whenever the app is reinstalled.
 */
import { execFile } from 'node:child_process'
import { generateKeyPairSync } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { createReleaseManifest } from '@digicap/cli-kit'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const exec = promisify(execFile)
const APP = fileURLToPath(new URL('../', import.meta.url))
const SCRIPT = join(APP, 'deploy', 'install-pi.sh')
const env = { PATH: [dirname(process.execPath), process.env.PATH].join(delimiter) }

let dir: string
let prefix: string
let root: string
let lib: string

type Run = { code: number; stdout: string; stderr: string }
const run = (cmd: string, args: string[]): Promise<Run> =>
  exec(cmd, args, { env }).then(
    (r) => ({ code: 0, ...r }),
    (e: Run) => e,
  )
const install = (...extra: string[]) =>
  run('bash', [SCRIPT, '--from-prefix', prefix, '--root', root, '--no-start', ...extra])
const verify = async (manifest = `${lib}.release.json`) =>
  run(process.execPath, [
    join(lib, 'node_modules/@digicap/pi-node/bin/pi-node.js'),
    ...['verify-install', '--data-dir', join(dir, 'data'), '--root', lib],
    ...[
      '--manifest',
      manifest,
      '--release-key',
      (await readFile(`${lib}.release-key`, 'utf8')).trim(),
    ],
  ])
const changes = (r: Run) => r.stdout.split('\n').filter((l) => l && !l.includes('note:'))

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pi-node-install-manifest-'))
  prefix = join(dir, 'prefix')
  root = join(dir, 'root')
  lib = join(root, 'usr/local/lib/digicap/pi-node')
  await mkdir(join(prefix, 'node_modules', '@digicap'), { recursive: true })
  await mkdir(join(prefix, 'node_modules', 'dep'))
  await mkdir(root)
  await symlink(APP.replace(/\/$/, ''), join(prefix, 'node_modules', '@digicap', 'pi-node'))
  await writeFile(join(prefix, 'node_modules', 'dep', 'index.js'), 'export default 1\n')
})

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true })
})

describe('install-pi.sh signs the release manifest of what it installed', () => {
  it('signs a fresh install; verify-install names a modified dependency file', async () => {
    const first = await install()
    expect(first.stderr).toBe('')
    expect(first.stdout).toContain('install-pi: created the host release key')
    expect(first.stdout).toContain(`install-pi: signed the release manifest ${lib}.release.json`)
    expect((await stat(join(root, 'etc/digicap/release-signing.pem'))).mode & 0o777).toBe(0o600)
    expect((await stat(`${lib}.release.json`)).mode & 0o777).toBe(0o644)
    expect((await readFile(`${lib}.release-key`, 'utf8')).trim()).toMatch(/^[0-9a-f]{64}$/)
    const manifest = JSON.parse(await readFile(`${lib}.release.json`, 'utf8'))
    expect(Object.keys(manifest.files)).toEqual([
      'node_modules/@digicap/pi-node',
      'node_modules/dep/index.js',
    ])
    expect((await verify()).code).toBe(0)

    await writeFile(join(lib, 'node_modules', 'dep', 'index.js'), 'steal()\n')
    const tampered = await verify()
    expect(tampered.code).toBe(1)
    expect(tampered.stderr).toContain('error[INSTALL_TAMPERED]')
    expect(tampered.stderr).toContain('node_modules/dep/index.js')
  }, 60_000)

  it('a re-run reinstalls into an emptied folder and signs the same manifest; one that installs nothing signs nothing', async () => {
    const manifest = await readFile(`${lib}.release.json`)
    await writeFile(join(lib, 'evil.js'), 'steal()\n')
    const repaired = await install()
    expect(changes(repaired)).toEqual([
      `install-pi: installed pi-node from ${prefix}`,
      `install-pi: signed the release manifest ${lib}.release.json`,
      'install-pi: done: pi-node 0.0.0',
    ])
    expect((await readFile(`${lib}.release.json`)).equals(manifest)).toBe(true)
    expect(existsSync(join(lib, 'evil.js'))).toBe(false)

    await writeFile(join(lib, 'evil.js'), 'steal()\n')
    const again = await install()
    expect(changes(again)).toEqual(['install-pi: nothing to change: pi-node 0.0.0'])
    expect((await readFile(`${lib}.release.json`)).equals(manifest)).toBe(true)
    const refused = await verify()
    expect(refused.code).toBe(1)
    expect(refused.stderr).toContain('evil.js')
    await rm(join(lib, 'evil.js'))
  }, 60_000)

  it("takes the release process's manifest only when it matches the installed tree", async () => {
    const release = generateKeyPairSync('ed25519')
    const key = (release.publicKey.export({ format: 'der', type: 'spki' }) as Buffer)
      .subarray(12)
      .toString('hex')
    const signed = join(dir, 'release.json')
    await writeFile(
      signed,
      JSON.stringify(await createReleaseManifest(lib, 'x@1', release.privateKey)),
    )
    const taken = await install('--release-manifest', signed, '--release-key', key)
    expect(taken.stdout).toContain(`install-pi: installed the release manifest signed by ${key}`)
    expect((await readFile(`${lib}.release-key`, 'utf8')).trim()).toBe(key)

    await writeFile(join(prefix, 'node_modules', 'dep', 'index.js'), 'export default 2\n')
    const other = await install('--release-manifest', signed, '--release-key', key)
    expect(other.code).toBe(1)
    expect(other.stderr).toContain('does not match')
  }, 60_000)
})
