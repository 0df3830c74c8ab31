/**
 * The `oci` sandbox with the real tools (runc, umoci, Debian's static busybox) and a real helia
 * node as the store: an image capsule's sealed image is pulled digest-checked, its layers
 * opened with the capsule key, unpacked into a tmpfs and run by runc with no network, a
 * read-only rootfs, no capabilities and no new privileges. Each refusal is a typed error and
 * leaves no container, no mount and no scratch directory behind.
 */
import { execFileSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { closeSync, constants, openSync, readdirSync } from 'node:fs'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createDigicapNode, type DigicapNode, heliaCapsuleStore } from '@digicap/p2p'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildBusyboxImage, SUM_CSV_SCRIPT } from '../../oci/test/busybox-image.ts'
import { createRunWorkspace } from '../src/run/workspace.ts'
import { ociSandbox } from '../src/sandbox/oci/oci-sandbox.ts'
import { SECCOMP_ALLOWED } from '../src/sandbox/oci/seccomp.ts'
import type { SandboxJob } from '../src/sandbox/types.ts'
import { type SealedImage, sealImageLayout } from './helpers/sealed-image.ts'

const CSV = 'name,amount\na,10\nb,20\nc,12\n'

type Sealed = SealedImage

describe('oci sandbox (runc)', () => {
  let node: DigicapNode
  let tmpRoot: string
  let stateDir: string
  const capsuleId = new Uint8Array(randomBytes(32))
  const dataKey = new Uint8Array(randomBytes(32))

  async function seal(init: Parameters<typeof buildBusyboxImage>[0]): Promise<Sealed> {
    return sealLayout(await buildBusyboxImage(init))
  }

  async function sealLayout(image: { dir: string; dispose(): Promise<void> }): Promise<Sealed> {
    return sealImageLayout(heliaCapsuleStore(node.helia), image, { capsuleId, dataKey })
  }

  const job = (
    s: Sealed,
    over: Partial<SandboxJob['runtime']> = {},
    key = dataKey,
  ): SandboxJob => ({
    runtime: {
      kind: 'oci',
      entry: s.manifestDigest,
      memoryLimitBytes: 64 * 1024 * 1024,
      timeLimitMs: 30_000,
      ...over,
    },
    code: s.specBytes.slice(),
    input: new TextEncoder().encode(CSV),
    capsuleKey: { capsuleId, dataKey: key.slice() },
  })

  const sandbox = () => ociSandbox({ store: heliaCapsuleStore(node.helia), stateDir })

  /** Nothing left: no runc container anywhere, no tmpfs mount, the workspace root empty. */
  async function expectNothingLeft(): Promise<void> {
    expect(await readdir(tmpRoot)).toEqual([])
    expect(await readdir(stateDir)).toEqual([])
    const mounts = await readFile('/proc/self/mounts', 'utf8')
    expect(mounts).not.toContain(tmpRoot)
    expect(mounts).not.toContain(stateDir)
    // Only this suite's containers: CI runs two package suites at once, and another one's image
    // run (the demo's, executor-node's) may have a runc container alive right now.
    const ps = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' })
    const runs = [...ps.matchAll(/runc --root (\S+) .*(digicap-[0-9a-f]{16}-[\d.]+)/g)]
    expect(runs.filter(([, root]) => root?.startsWith(stateDir)).map(([line]) => line)).toEqual([])
    const foreign = new Set(
      runs.filter(([, root]) => !root?.startsWith(stateDir)).map(([, , id]) => id),
    )
    const cgroups = await readdir('/sys/fs/cgroup/pids/digicap').catch(() => [])
    expect(cgroups.filter((n) => n.startsWith('digicap-') && !foreign.has(n))).toEqual([])
  }

  async function runIn(j: SandboxJob, s = sandbox()) {
    const ws = createRunWorkspace({ tmpRoot })
    try {
      return await s.run(j, { workspace: ws })
    } finally {
      await ws.dispose()
    }
  }

  beforeAll(async () => {
    node = await createDigicapNode()
    tmpRoot = await mkdtemp(join(tmpdir(), 'oci-sandbox-ws-'))
    stateDir = await mkdtemp(join(tmpdir(), 'oci-sandbox-state-'))
  })
  afterAll(async () => {
    await node?.stop()
    await rm(tmpRoot, { recursive: true, force: true })
    await rm(stateDir, { recursive: true, force: true })
  })

  it('runs the aggregation offline, unprivileged, on a read-only rootfs; stdout is the result', async () => {
    const probe = [
      '#!/bin/sh',
      '/app/sum.sh',
      'echo "uid=$(id -u)"',
      "grep -E '^(NoNewPrivs|CapEff)' /proc/self/status | tr -s '\\t' ' '",
      'touch /rootfs-write 2>/dev/null && echo rootfs=writable || echo rootfs=readonly',
      "awk 'NR > 2 { print $1 }' /proc/net/dev | tr '\\n' ' '; echo",
    ].join('\n')
    const sealed = await seal({
      files: {
        'app/sum.sh': SUM_CSV_SCRIPT,
        'app/probe.sh': probe.replace(' | tr -s', ' | tr -s'),
      },
      config: { Cmd: ['/bin/sh', '/app/probe.sh'] },
    })
    const steps: string[] = []
    let tmpfs: unknown
    const s = ociSandbox({
      stateDir,
      store: heliaCapsuleStore(node.helia),
      onStep: (e) => {
        steps.push(e.step)
        if (e.step === 'scratch') tmpfs = e.detail?.tmpfs
      },
    })
    const result = await runIn(job(sealed), s)
    const text = new TextDecoder().decode(result.output)
    expect(text).toContain('rows=3 sum=42')
    expect(text).toContain('uid=65534')
    expect(text).toMatch(/NoNewPrivs:?\s+1/)
    expect(text).toMatch(/CapEff:?\s+0000000000000000/)
    expect(text).toContain('rootfs=readonly')
    // the only interface is loopback: no network
    expect(text.trim().split('\n').at(-1)?.trim()).toBe('lo:')
    expect(steps).toEqual(['scratch', 'pull', 'decrypt', 'unpack', 'container'])
    // root here may mount: decrypted layers and the rootfs lived in a tmpfs
    expect(tmpfs).toBe(true)
    await expectNothingLeft()
  }, 120_000)

  it('a default-deny seccomp filter is on: new namespaces, setns and mounts fail inside the container', async () => {
    const probe = [
      '#!/bin/sh',
      "grep -E '^Seccomp:' /proc/self/status | tr -s '\\t' ' '",
      // a user namespace needs no capability (unprivileged user namespaces are on here)
      'unshare -U true 2>/dev/null && echo userns=yes || echo userns=no',
      'unshare -U -n true 2>/dev/null && echo netns=yes || echo netns=no',
      'mount -t tmpfs none /tmp 2>/dev/null && echo mount=yes || echo mount=no',
      'nsenter -t 1 -U true 2>/dev/null && echo setns=yes || echo setns=no',
      '/app/sum.sh',
    ].join('\n')
    const sealed = await seal({
      files: { 'app/sum.sh': SUM_CSV_SCRIPT, 'app/probe.sh': probe },
      config: { Cmd: ['/bin/sh', '/app/probe.sh'] },
    })
    const text = new TextDecoder().decode((await runIn(job(sealed))).output)
    // mode 2: a filter
    expect(text).toMatch(/Seccomp:\s+2/)
    expect(text).toContain('userns=no')
    expect(text).toContain('netns=no')
    expect(text).toContain('mount=no')
    expect(text).toContain('setns=no')
    // and what busybox needs still works
    expect(text).toContain('rows=3 sum=42')
    // what busybox cannot probe is outside the allow-list too (the default action is EPERM)
    for (const name of ['ptrace', 'keyctl', 'add_key', 'bpf', 'unshare', 'setns', 'mount']) {
      expect(SECCOMP_ALLOWED).not.toContain(name)
    }
    await expectNothingLeft()
  }, 120_000)

  it("the container reads its input under the daemons' umask 077 too", async () => {
    const sealed = await seal({
      files: { 'app/sum.sh': SUM_CSV_SCRIPT },
      config: { Cmd: ['/bin/sh', '/app/sum.sh'] },
    })
    const before = process.umask(0o077)
    try {
      const result = await runIn(job(sealed))
      expect(new TextDecoder().decode(result.output)).toBe('rows=3 sum=42\n')
    } finally {
      process.umask(before)
    }
    await expectNothingLeft()
  }, 120_000)

  it('an image shipping /digicap as a symlink is refused before any container (OCI_FORMAT)', async () => {
    const sealed = await seal({
      links: { digicap: '/etc' },
      config: { Cmd: ['/bin/true'] },
    })
    await expect(runIn(job(sealed))).rejects.toMatchObject({
      code: 'OCI_FORMAT',
      details: { path: '/digicap', type: 'symlink' },
    })
    await expectNothingLeft()
  }, 120_000)

  it('takes the result from /digicap/output when the committed config says file:', async () => {
    const sealed = await seal({
      files: { 'app/sum.sh': `${SUM_CSV_SCRIPT.trimEnd()} > /digicap/output/result.txt\n` },
      config: {
        Cmd: ['/bin/sh', '/app/sum.sh'],
        Labels: { 'org.digicap.result': 'file:/digicap/output/result.txt' },
      },
    })
    const result = await runIn(job(sealed))
    expect(new TextDecoder().decode(result.output)).toBe('rows=3 sum=42\n')
    await expectNothingLeft()
  }, 120_000)

  it('a FIFO left as the result file is refused (SANDBOX_CRASH, not-regular) within the time limit, four at once too: no run blocks the thread pool', async () => {
    const sealed = await seal({
      files: { 'app/run.sh': '#!/bin/sh\n/bin/busybox mkfifo /digicap/output/result\n' },
      config: {
        Cmd: ['/bin/sh', '/app/run.sh'],
        Labels: { 'org.digicap.result': 'file:/digicap/output/result' },
      },
    })
    const t0 = Date.now()
    const runs = [0, 1, 2, 3].map(() =>
      runIn(job(sealed, { timeLimitMs: 5_000 })).then(
        () => 'resolved',
        (e: { code?: string; details?: unknown }) => ({ code: e.code, details: e.details }),
      ),
    )
    const settled = Promise.all(runs)
    const raced = await Promise.race([
      settled,
      new Promise<'pending'>((r) => setTimeout(() => r('pending'), 60_000)),
    ])
    if (raced === 'pending') {
      // a regression: a blocked open() holds a pool thread, so fs.promises cannot help here;
      // opening each FIFO's write end (synchronously, non-blocking) lets the suite go on
      for (const run of readdirSync(stateDir)) {
        try {
          closeSync(
            openSync(
              join(stateDir, run, 'output', 'result'),
              constants.O_WRONLY | constants.O_NONBLOCK,
            ),
          )
        } catch {}
      }
      await settled
    }
    expect(raced).toEqual(
      Array(4).fill({
        code: 'SANDBOX_CRASH',
        details: { file: 'result', type: 'fifo' },
      }),
    )
    expect(Date.now() - t0).toBeLessThan(60_000)
    await expectNothingLeft()
  }, 180_000)

  it('without a tmpfs, every file of the scratch (decrypted layers, rootfs) is overwritten on clean-up, whatever its size', async () => {
    // 2 MiB of random bytes in the image, over a workspace whose own overwrite cap is 64 KiB:
    // the scratch holds the sealed and the plain layer and the unpacked rootfs file
    const sealed = await seal({
      padBytes: 2 * 1024 * 1024,
      config: { Cmd: ['/bin/sh', '-c', 'exit 0'] },
    })
    let tmpfs: unknown
    const s = ociSandbox({
      store: heliaCapsuleStore(node.helia),
      stateDir,
      tmpfs: false,
      onStep: (e) => {
        if (e.step === 'scratch') tmpfs = e.detail?.tmpfs
      },
    })
    const ws = createRunWorkspace({ tmpRoot, maxOverwriteBytes: 64 * 1024 })
    await s.run(job(sealed), { workspace: ws })
    const report = await ws.dispose()
    expect(tmpfs).toBe(false)
    expect(report.failures).toEqual([])
    // the plain layer and the rootfs's copy at least (the sealed layer is gzip of random bytes)
    expect(report.fileBytesOverwritten).toBeGreaterThan(3 * 2 * 1024 * 1024)
    await expectNothingLeft()
  }, 120_000)

  it('kills a container that never exits (ignores SIGTERM, forks, closes its output) at its time limit (SANDBOX_TIMEOUT), nothing left', async () => {
    const mark = String(50_000 + Math.floor(Math.random() * 9_999))
    const sealed = await seal({
      config: {
        Cmd: [
          '/bin/sh',
          '-c',
          `trap '' TERM HUP INT; (trap '' TERM HUP; exec sleep ${mark}1) </dev/null >/dev/null 2>&1 & exec sleep ${mark}2 >/dev/null 2>&1`,
        ],
      },
    })
    const t0 = Date.now()
    await expect(runIn(job(sealed, { timeLimitMs: 2000 }))).rejects.toMatchObject({
      code: 'SANDBOX_TIMEOUT',
    })
    expect(Date.now() - t0).toBeLessThan(60_000)
    const ps = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' })
    expect(ps).not.toContain(`sleep ${mark}`)
    await expectNothingLeft()
  }, 120_000)

  it('a run the executor aborts while its container runs is SANDBOX_ABORTED, nothing left', async () => {
    const sealed = await seal({ config: { Cmd: ['/bin/sleep', '3600'] } })
    const stop = new AbortController()
    const s = ociSandbox({
      store: heliaCapsuleStore(node.helia),
      stateDir,
      // the container starts right after the unpack: abort once it has had a moment to run
      onStep: (e) => {
        if (e.step === 'unpack') setTimeout(() => stop.abort(), 1000)
      },
    })
    const ws = createRunWorkspace({ tmpRoot })
    try {
      await expect(
        s.run(job(sealed), { workspace: ws, signal: stop.signal }),
      ).rejects.toMatchObject({ code: 'SANDBOX_ABORTED' })
    } finally {
      await ws.dispose()
    }
    await expectNothingLeft()
  }, 120_000)

  it('refuses an image asking to run as root before any container exists (OCI_PRIVILEGE)', async () => {
    const sealed = await seal({ config: { Cmd: ['/bin/id'], User: '0' } })
    await expect(runIn(job(sealed))).rejects.toMatchObject({
      code: 'OCI_PRIVILEGE',
      details: { field: 'User' },
    })
    const ports = await seal({ config: { Cmd: ['/bin/id'], ExposedPorts: { '80/tcp': {} } } })
    await expect(runIn(job(ports))).rejects.toMatchObject({ code: 'OCI_PRIVILEGE' })
    // a writable host volume, and root's group behind a plain uid
    const volume = await seal({ config: { Cmd: ['/bin/id'], Volumes: { '/data': {} } } })
    await expect(runIn(job(volume))).rejects.toMatchObject({
      code: 'OCI_PRIVILEGE',
      details: { field: 'Volumes' },
    })
    const rootGroup = await seal({ config: { Cmd: ['/bin/id'], User: '1000:0' } })
    await expect(runIn(job(rootGroup))).rejects.toMatchObject({
      code: 'OCI_PRIVILEGE',
      details: { field: 'User' },
    })
    await expectNothingLeft()
  }, 120_000)

  it('opens no layer with another key (OCI_KEY), nothing unpacked', async () => {
    const sealed = await seal({ config: { Cmd: ['/bin/id'] } })
    await expect(runIn(job(sealed, {}, new Uint8Array(randomBytes(32))))).rejects.toMatchObject({
      code: 'OCI_KEY',
    })
    await expectNothingLeft()
  }, 120_000)

  it('refuses a manifest other than the committed one (OCI_INTEGRITY manifest-digest)', async () => {
    const a = await seal({ config: { Cmd: ['/bin/id'] } })
    const b = await seal({ config: { Cmd: ['/bin/echo', 'other'] } })
    // b's map lists b's blobs; a map that answers a's committed digest with b's manifest
    const { readImageDistribution } = await import('@digicap/oci')
    const store = heliaCapsuleStore(node.helia)
    const mapB = await readImageDistribution(store, b.distribution)
    const lying = {
      ...mapB,
      blobs: {
        ...mapB.blobs,
        [a.manifestDigest]: mapB.blobs[b.manifestDigest as `sha256:${string}`],
      },
    }
    const lyingCid = await store.put(new TextEncoder().encode(JSON.stringify(lying)))
    const spec = new TextEncoder().encode(JSON.stringify({ v: 1, distribution: lyingCid }))
    await expect(runIn({ ...job(a), code: spec })).rejects.toMatchObject({
      code: 'OCI_INTEGRITY',
      details: { reason: 'manifest-digest' },
    })
    await expectNothingLeft()
  }, 120_000)

  it('refuses a layer served with a flipped bit or cut short: typed, before any byte is decrypted', async () => {
    const sealed = await seal({ config: { Cmd: ['/bin/id'] } })
    const { readImageDistribution } = await import('@digicap/oci')
    const store = heliaCapsuleStore(node.helia)
    const map = await readImageDistribution(store, sealed.distribution)
    const manifestParts: Uint8Array[] = []
    for await (const c of store.get(map.blobs[sealed.manifestDigest as `sha256:${string}`]!.cid)) {
      manifestParts.push(c)
    }
    const layer = JSON.parse(Buffer.concat(manifestParts).toString('utf8')).layers[0].digest
    const parts: Uint8Array[] = []
    for await (const c of store.get(map.blobs[layer as `sha256:${string}`]!.cid)) parts.push(c)
    const original = Buffer.concat(parts)
    const lie = async (bytes: Uint8Array) => {
      const cid = await store.put(bytes)
      const lying = { ...map, blobs: { ...map.blobs, [layer]: { cid, size: original.length } } }
      const mapCid = await store.put(new TextEncoder().encode(JSON.stringify(lying)))
      return new TextEncoder().encode(JSON.stringify({ v: 1, distribution: mapCid }))
    }
    const flipped = Buffer.from(original)
    flipped[flipped.length - 7]! ^= 0x10
    await expect(runIn({ ...job(sealed), code: await lie(flipped) })).rejects.toMatchObject({
      code: 'OCI_INTEGRITY',
      details: { reason: 'blob-digest' },
    })
    await expect(
      runIn({ ...job(sealed), code: await lie(original.subarray(0, original.length - 100)) }),
    ).rejects.toMatchObject({ code: 'OCI_TRUNCATED' })
    await expectNothingLeft()
  }, 120_000)

  it('a layer that is not a tar (sealed so by its owner) is OCI_FORMAT from the unpack, nothing left', async () => {
    const built = await buildBusyboxImage({ config: { Cmd: ['/bin/true'] } })
    // the owner's own image: a layer of noise under the gzip tar media type, digests all correct
    const index = JSON.parse(await readFile(join(built.dir, 'index.json'), 'utf8'))
    const blob = (d: string) => join(built.dir, 'blobs', 'sha256', d.slice(7))
    const manifest = JSON.parse(await readFile(blob(index.manifests[0].digest), 'utf8'))
    const noise = new Uint8Array(randomBytes(4096))
    const noiseDigest = `sha256:${createHash('sha256').update(noise).digest('hex')}`
    await writeFile(blob(noiseDigest), noise)
    manifest.layers[0] = { ...manifest.layers[0], digest: noiseDigest, size: noise.length }
    const bytes = Buffer.from(JSON.stringify(manifest))
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`
    await writeFile(blob(digest), bytes)
    index.manifests[0] = { ...index.manifests[0], digest, size: bytes.length }
    await writeFile(join(built.dir, 'index.json'), JSON.stringify(index))
    const sealed = await sealLayout(built)
    const err = await runIn(job(sealed)).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'OCI_FORMAT', details: { tool: 'umoci' } })
    await expectNothingLeft()
  }, 120_000)

  it('a container over its memory limit is killed (SANDBOX_MEMORY), nothing left', async () => {
    // busybox dd buffers one block of bs bytes: 96 MiB under a 32 MiB limit
    const sealed = await seal({
      config: { Cmd: ['/bin/dd', 'if=/dev/zero', 'of=/dev/null', 'bs=96M', 'count=1'] },
    })
    await expect(runIn(job(sealed, { memoryLimitBytes: 32 * 1024 * 1024 }))).rejects.toMatchObject({
      code: 'SANDBOX_MEMORY',
    })
    await expectNothingLeft()
  }, 120_000)
})
