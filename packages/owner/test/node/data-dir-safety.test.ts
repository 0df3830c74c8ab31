/**
 * A data folder another local user can write into is refused (ADR 0089). config.json names the
 * chain RPC the keyguard believes, the contracts and the release; the key record holds the PCR
 * approval. In a folder (or under a parent) that is group- or world-writable without the sticky
 * bit, an unprivileged user cannot read those 0600 files but can rename his own over them —
 * here the real user `nobody` swaps in a config whose RPC is his, and before this check the
 * node loaded it. `init` tightens a folder it finds loose to 0700.
 */
import { execFileSync } from 'node:child_process'
import { chmod, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  loadOwnerNodeConfig,
  type OwnerNodeConfig,
  prepareDataDir,
  saveOwnerNodeConfig,
} from '../../src/node/index.ts'

const NOBODY = 65534
const isRoot = process.getuid?.() === 0

const base: OwnerNodeConfig = {
  version: 1,
  dataDir: '/x',
  rpcUrl: 'http://127.0.0.1:8545',
  chainId: 31337,
  contracts: {
    capsuleRegistry: `0x${'11'.repeat(20)}`,
    nodeRegistry: `0x${'22'.repeat(20)}`,
    accessController: `0x${'33'.repeat(20)}`,
  },
  sealer: { kind: 'tpm2', tcti: 'device:/dev/tpmrm0' },
  listen: ['/ip4/0.0.0.0/tcp/4001'],
  bootstrap: [],
}

async function rejection(p: Promise<unknown>) {
  return p.then(
    () => undefined,
    (e: unknown) => e as { code?: string; details?: Record<string, unknown> },
  )
}

describe('data folder writable by others', () => {
  let root: string
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'owner-data-dir-'))
    // `nobody` must reach the folders below (search permission only).
    await chmod(root, 0o711)
  })
  afterAll(() => rm(root, { recursive: true, force: true }))

  it.runIf(isRoot)(
    'another user swaps config.json in a 0777 folder: the node refuses the folder',
    async () => {
      const dir = join(root, 'loose')
      await mkdir(dir)
      await saveOwnerNodeConfig({ ...base, dataDir: dir })
      await chmod(dir, 0o777)
      const forged = JSON.stringify({ ...base, rpcUrl: 'http://attacker.invalid:8545' })
      // As `nobody`: cannot read or write the 0600 config, can rename a file of his over it.
      execFileSync(
        '/bin/sh',
        ['-c', `printf '%s' "$1" > "$2/x" && mv -f "$2/x" "$2/config.json"`, 'sh', forged, dir],
        {
          uid: NOBODY,
          gid: NOBODY,
        },
      )
      expect((await stat(join(dir, 'config.json'))).uid).toBe(NOBODY)
      const err = await rejection(loadOwnerNodeConfig(dir))
      expect(err?.code).toBe('CONFIG')
      expect(err?.details).toMatchObject({ reason: 'data-dir-writable', path: dir })
    },
  )

  it('refuses a folder under a parent writable by others (no sticky bit); a sticky parent is fine', async () => {
    const open = join(root, 'open')
    await mkdir(join(open, 'node'), { recursive: true })
    await saveOwnerNodeConfig({ ...base, dataDir: join(open, 'node') })
    await chmod(open, 0o777)
    const err = await rejection(loadOwnerNodeConfig(join(open, 'node')))
    expect(err?.code).toBe('CONFIG')
    expect(err?.details).toMatchObject({ reason: 'data-dir-writable', path: open })
    await chmod(open, 0o1777)
    expect((await loadOwnerNodeConfig(join(open, 'node'))).rpcUrl).toBe(base.rpcUrl)
  })

  it.runIf(isRoot)(
    'another user rewrites a loose config.json in place through a 0755 folder: refused',
    async () => {
      // 0755 is systemd's StateDirectory default and passes the folder check (readable is
      // fine); a config.json left 0666 (restored from a backup, edited under umask 0) is then
      // writable in place by anyone, no rename needed.
      const dir = join(root, 'traversable')
      await mkdir(dir)
      await saveOwnerNodeConfig({ ...base, dataDir: dir })
      await chmod(dir, 0o755)
      await chmod(join(dir, 'config.json'), 0o666)
      const forged = JSON.stringify({ ...base, rpcUrl: 'http://attacker.invalid:8545' })
      execFileSync('/bin/sh', ['-c', `printf '%s' "$1" > "$2/config.json"`, 'sh', forged, dir], {
        uid: NOBODY,
        gid: NOBODY,
      })
      const err = await rejection(loadOwnerNodeConfig(dir))
      expect(err?.code).toBe('CONFIG')
      expect(err?.details).toMatchObject({
        reason: 'data-dir-writable',
        path: join(dir, 'config.json'),
      })
    },
  )

  it('a loose file in a folder no one else can enter is no risk: loaded', async () => {
    const dir = join(root, 'closed')
    await mkdir(dir)
    await saveOwnerNodeConfig({ ...base, dataDir: dir })
    await chmod(dir, 0o700)
    await chmod(join(dir, 'config.json'), 0o666)
    expect((await loadOwnerNodeConfig(dir)).rpcUrl).toBe(base.rpcUrl)
  })

  it.runIf(isRoot)('a folder owned by another user is refused', async () => {
    const theirs = join(root, 'theirs')
    await mkdir(theirs, { mode: 0o700 })
    await saveOwnerNodeConfig({ ...base, dataDir: theirs })
    execFileSync('chown', [`${NOBODY}:${NOBODY}`, theirs])
    const err = await rejection(loadOwnerNodeConfig(theirs))
    expect(err?.code).toBe('CONFIG')
    expect(err?.details).toMatchObject({ reason: 'data-dir-owner', path: theirs })
  })

  it('a --data-dir that is a file, or under one, is a CONFIG error, not a raw ENOTDIR', async () => {
    const file = join(root, 'a-file')
    await writeFile(file, 'not a folder')
    for (const dir of [file, join(file, 'node')]) {
      const err = await rejection(loadOwnerNodeConfig(dir))
      expect(err?.code).toBe('CONFIG')
    }
  })

  it('init tightens a loose folder it finds to 0700 (and makes a missing one 0700)', async () => {
    const found = join(root, 'found')
    await mkdir(found, { mode: 0o777 })
    await chmod(found, 0o777)
    await prepareDataDir(found)
    expect((await stat(found)).mode & 0o777).toBe(0o700)
    await prepareDataDir(join(root, 'made', 'node'))
    expect((await stat(join(root, 'made', 'node'))).mode & 0o777).toBe(0o700)
  })
})
