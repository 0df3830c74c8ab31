/**
 * The status token file: only `serve` writes it (a new one at each start: the rotation), and
 * `pi-node status` only reads it, after checking type, mode and owner. A token that cannot be
 * written turns the status page off with a warning; the ops port and the daemon go on. Real
 * files; as root, a real second uid (setpriv) plays the service user.
 */
import { spawnSync } from 'node:child_process'
import { chmod, chown, mkdir, mkdtemp, readFile, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import {
  createLogger,
  createStatusToken,
  readStatusToken,
  STATUS_TOKEN_FILE,
  startPiNodeOps,
  statusPageLine,
  statusPageLink,
} from '../src/index.ts'

const isRoot = process.getuid?.() === 0
const fresh = () => mkdtemp(join(tmpdir(), 'ops-token-'))

async function reason(p: Promise<unknown>) {
  const err = (await p.then(
    () => undefined,
    (e: unknown) => e,
  )) as { code?: string; details?: { reason?: string } } | undefined
  return `${err?.code} ${err?.details?.reason}`
}

describe('status token file', () => {
  it('serve writes a new 0600 token at each start; status reads it back', async () => {
    const dir = await fresh()
    const file = join(dir, STATUS_TOKEN_FILE)
    const first = await createStatusToken(file)
    expect(first).toMatch(/^[0-9a-f]{64}$/)
    expect((await stat(file)).mode & 0o777).toBe(0o600)
    expect(await readStatusToken(file)).toBe(first)
    const second = await createStatusToken(file) // the next start: rotated
    expect(second).not.toBe(first)
    expect(await readStatusToken(file)).toBe(second)
  })

  it('status refuses a missing, world-readable, foreign, odd or garbage token (and creates none)', async () => {
    const dir = await fresh()
    const file = join(dir, STATUS_TOKEN_FILE)
    expect(await reason(readStatusToken(file))).toBe('STATUS_TOKEN missing')
    await expect(stat(file)).rejects.toMatchObject({ code: 'ENOENT' }) // nothing created
    await writeFile(file, `${'cd'.repeat(32)}\n`, { mode: 0o644 })
    await chmod(file, 0o644)
    expect(await reason(readStatusToken(file))).toBe('STATUS_TOKEN permissions')
    expect((await stat(file)).mode & 0o777).toBe(0o644) // left as it is
    await chmod(file, 0o600)
    await writeFile(file, 'nope\n')
    expect(await reason(readStatusToken(file))).toBe('STATUS_TOKEN invalid')
    const sub = join(dir, 'sub')
    await mkdir(join(sub, STATUS_TOKEN_FILE), { recursive: true })
    expect(await reason(readStatusToken(join(sub, STATUS_TOKEN_FILE)))).toBe(
      'STATUS_TOKEN not-a-file',
    )
    if (isRoot) {
      await writeFile(file, `${'cd'.repeat(32)}\n`, { mode: 0o600 })
      await chown(file, 65534, 65534) // not the folder's owner (root here)
      expect(await reason(readStatusToken(file))).toBe('STATUS_TOKEN owner')
    }
  })

  it('`pi-node status` without a daemon creates no token file', async () => {
    const dir = await fresh()
    expect(statusPageLine(await statusPageLink(dir))).toContain('status page off')
    await expect(stat(join(dir, STATUS_TOKEN_FILE))).rejects.toMatchObject({ code: 'ENOENT' })
  })

  it.runIf(isRoot)(
    'the service user starts over a root-owned token left by `sudo pi-node status`',
    async () => {
      const dir = await fresh()
      await chmod(dir, 0o700)
      await chown(dir, 65534, 65534) // the data folder belongs to the service user
      const file = join(dir, STATUS_TOKEN_FILE)
      await writeFile(file, `${'ab'.repeat(32)}\n`, { mode: 0o600 }) // root's, from before
      const script = `import(${JSON.stringify(join(import.meta.dirname, '..', 'src', 'status', 'token.ts'))}).then((m) => m.createStatusToken(${JSON.stringify(file)})).then((t) => console.log(t), (e) => { console.log(e.code); process.exit(1) })`
      const r = spawnSync(
        'setpriv',
        ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', script],
        { encoding: 'utf8' },
      )
      expect(r.status, r.stderr).toBe(0)
      const st = await stat(file)
      expect(st.uid).toBe(65534)
      expect(st.mode & 0o777).toBe(0o600)
      expect((await readFile(file, 'utf8')).trim()).toBe(r.stdout.trim())
      // root (sudo pi-node status) reads the service user's token: the folder's owner.
      expect(await readStatusToken(file)).toBe(r.stdout.trim())
    },
  )

  it('a token that cannot be written turns the status page off with a warning, not the daemon', async () => {
    const dir = await fresh()
    await mkdir(join(dir, STATUS_TOKEN_FILE)) // a folder where the file goes: rename fails
    const lines: string[] = []
    const ops = await startPiNodeOps(
      {
        status: async () => ({ operator: {} }),
        sealer: {
          describe: async () => ({ kind: 'tpm2', hardwareBacked: true }),
          wrap: async () => 'w',
          unwrap: async () => new Uint8Array(32),
        },
        keyStore: { list: async () => [], get: async () => undefined },
      },
      {
        peerId: '12D3KooWTest',
        keyguard: {
          status: async () => ({
            running: true,
            chain: { chainId: '1', head: 1, cursor: { number: 1 } },
            fastPath: { enabled: true },
          }),
          events: new EventTarget(),
        },
        peers: () => 0,
      },
      {
        dataDir: dir,
        version: '0',
        port: 0,
        host: undefined,
        allowPublic: false,
        env: {},
        logger: createLogger({ stream: { write: (l: string) => lines.push(l) } }),
      },
    )
    try {
      expect(ops.statusUrl).toBeUndefined()
      const warn = lines.map((l) => JSON.parse(l)).find((l) => l.level === 'warn')
      expect(warn?.message).toBe('status page off: cannot write its token')
      expect((await fetch(`${ops.url}/status`)).status).toBe(404)
      expect((await fetch(`${ops.url}/metrics`)).status).toBe(200)
    } finally {
      await ops.stop()
    }
  })
})
