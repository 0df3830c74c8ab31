/**
 * executor-node.service and its OCI drop-in (deploy/oci.conf) under a real systemd, booted by
 * systemd-nspawn (scripts/systemd-container.ts). The unit is the shipped file; a test drop-in
 * only swaps its ExecStart for what the `oci` sandbox does on a run — a scratch tmpfs, the
 * image's files chowned to its user (a setuid bit kept, as umoci keeps it), then rootful runc
 * with the sandbox's own runtime spec (`runtimeSpec`: new pid/net/ipc/uts/mount namespaces,
 * cgroup limits, hostname, read-only root, no capabilities, seccomp) over a busybox rootfs,
 * read from the digicap-owned data folder. The unit alone refuses it; with oci.conf it runs;
 * without any one line of oci.conf, or any one of the capabilities those steps use, it fails.
 */
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runtimeSpec } from '../../../packages/executor/src/sandbox/oci/runtime-spec.ts'
import {
  type BootedContainer,
  bootContainer,
  SERVICE_UID,
  TEST_TARGET,
} from '../../../scripts/systemd-container.ts'

const DEPLOY = new URL('../deploy/', import.meta.url)
const IMAGE_UID = 1000
const SCRATCH = '/tmp/scratch'

let dir: string
let units: string
let box: BootedContainer
let ociConf: string
/**
 * The test's own change to the unit: the run's steps instead of `executor-node serve`, once.
 * runc goes without the unit's NOTIFY_SOCKET, as the sandbox spawns it (runc.ts): with it,
 * `runc run` waits for the container's READY=1 and never returns.
 */
const PROBE = `[Service]
Type=oneshot
Restart=no
ExecStart=
ExecStart=/bin/sh /var/lib/digicap/probe.sh
ExecStart=/usr/bin/env -u NOTIFY_SOCKET runc --root ${SCRATCH}/runc run --bundle ${SCRATCH}/bundle probe
`

/** What the sandbox does before runc on a run: scratch, the image's files, input and output. */
const probeScript = `set -e
mkdir -p ${SCRATCH}/tmpfs
mount -t tmpfs -o size=64m,mode=0700,nosuid,nodev tmpfs ${SCRATCH}/tmpfs
umount ${SCRATCH}/tmpfs
cp -a /var/lib/digicap/image ${SCRATCH}/bundle
sed -i "s|/digicap/unit-test|/digicap/unit-test-$$|" ${SCRATCH}/bundle/config.json
cp ${SCRATCH}/bundle/rootfs/bin/busybox ${SCRATCH}/bundle/rootfs/bin/su
chown ${IMAGE_UID}:${IMAGE_UID} ${SCRATCH}/bundle/rootfs/bin/su
chmod 4755 ${SCRATCH}/bundle/rootfs/bin/su
mkdir -m 0700 ${SCRATCH}/output
chown ${IMAGE_UID}:${IMAGE_UID} ${SCRATCH}/output
echo digicap > ${SCRATCH}/input
chmod 0444 ${SCRATCH}/input
`

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'exnode-oci-unit-'))
  units = join(dir, 'units')
  const data = join(dir, 'data')
  const rootfs = join(data, 'image', 'rootfs')
  await mkdir(join(rootfs, 'bin'), { recursive: true })
  await mkdir(join(rootfs, 'digicap'), { mode: 0o755 })
  await copyFile('/bin/busybox', join(rootfs, 'bin', 'busybox'))
  const spec = runtimeSpec({
    run: {
      uid: IMAGE_UID,
      gid: IMAGE_UID,
      args: [
        '/bin/busybox',
        'sh',
        '-c',
        'echo "result: $(hostname) uid=$(id -u) $(cat /digicap/input)"',
      ],
      env: [],
      cwd: '/',
      result: { kind: 'file', name: 'result' },
    } as never,
    limits: { memoryBytes: 64 << 20, cpus: 1, pids: 16, fileSizeBytes: 1 << 20 },
    inputFile: `${SCRATCH}/input`,
    outputDir: `${SCRATCH}/output`,
    // Made unique per run by the script (runs go in parallel).
    cgroupsPath: `/digicap/unit-test`,
  })
  await writeFile(join(data, 'image', 'config.json'), JSON.stringify(spec))
  await writeFile(join(data, 'probe.sh'), probeScript)
  ociConf = await readFile(new URL('oci.conf', DEPLOY), 'utf8')
  await mkdir(units)
  await writeFile(join(units, 'digicap-test.target'), TEST_TARGET)
  await writeFile(
    join(dir, 'passwd'),
    `root:x:0:0:root:/root:/bin/sh\ndigicap:x:${SERVICE_UID}:${SERVICE_UID}::/var/lib/digicap:/usr/sbin/nologin\n`,
  )
  await writeFile(
    join(dir, 'group'),
    `root:x:0:\ndigicap:x:${SERVICE_UID}:\ntss:x:${SERVICE_UID - 1}:digicap\n`,
  )
  const { execFileSync } = await import('node:child_process')
  execFileSync('chown', ['-R', `${SERVICE_UID}:${SERVICE_UID}`, data])
  execFileSync('chmod', ['0700', data])
  box = await bootContainer({
    runc: true,
    binds: [
      `${units}:/etc/systemd/system`,
      `ro:${join(dir, 'passwd')}:/etc/passwd`,
      `ro:${join(dir, 'group')}:/etc/group`,
      `${data}:/var/lib/digicap`,
    ],
  })
}, 60_000)

afterAll(async () => {
  await box?.stop()
  if (dir) await rm(dir, { recursive: true, force: true })
})

const UNIT = new URL('executor-node.service', DEPLOY)

/**
 * Starts the units named (copies of executor-node.service, each with the probe and its own
 * oci.conf, none when undefined) at once; each one's result and log.
 */
async function startAll(
  variants: Record<string, string | undefined>,
): Promise<Record<string, { ok: boolean; log: string }>> {
  const unitFile = await readFile(UNIT, 'utf8')
  for (const [name, dropIn] of Object.entries(variants)) {
    const d = join(units, `${name}.service.d`)
    await mkdir(d, { recursive: true })
    await writeFile(join(units, `${name}.service`), unitFile)
    await writeFile(join(d, 'probe.conf'), PROBE)
    if (dropIn === undefined) await rm(join(d, 'oci.conf'), { force: true })
    else await writeFile(join(d, 'oci.conf'), dropIn)
  }
  const reloaded = await box.systemctl('daemon-reload')
  if (reloaded.code !== 0) throw new Error(`daemon-reload: ${reloaded.stderr}`)
  // Non-zero when one fails (most do, on purpose): each one's Result says.
  await box.systemctl('start', ...Object.keys(variants))
  const out: Record<string, { ok: boolean; log: string }> = {}
  for (const name of Object.keys(variants)) {
    const result = (await box.systemctl('show', '-p', 'Result', '--value', name)).stdout.trim()
    // The journal gets the unit's output a little after it exits.
    let log = ''
    for (let i = 0; i < 30 && !/^(Finished|Failed to start) /m.test(log); i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 100))
      log = (await box.run(['journalctl', '-u', name, '-o', 'cat'])).stdout
    }
    out[name] = { ok: result === 'success', log }
  }
  return out
}

/** oci.conf with one setting taken out (or one capability out of its bounding set). */
function without(setting: string): string {
  const [key, value] = setting.split('=') as [string, string | undefined]
  return ociConf
    .split('\n')
    .map((l) => {
      if (value === undefined) return l.startsWith(`${key}=`) ? '' : l
      return l.startsWith(`${key}=`) ? l.replace(` ${value}`, '').replace(`=${value} `, '=') : l
    })
    .join('\n')
}

describe('executor-node.service + deploy/oci.conf under a real systemd', () => {
  it('the unit alone refuses runc; with oci.conf the sandbox spec runs, as the image user, with its hostname', async () => {
    const r = await startAll({ 'executor-node': ociConf, 'bare-unit': undefined })
    expect(r['executor-node']?.ok, r['executor-node']?.log).toBe(true)
    expect(r['executor-node']?.log).toContain(`result: capsule uid=${IMAGE_UID} digicap`)
    expect(r['bare-unit']?.ok).toBe(false)
    // As the digicap user without capabilities, the first step already fails.
    expect(r['bare-unit']?.log).toMatch(/mount: .*(permission denied|must be superuser)/i)
  })

  it('each setting of oci.conf, and each capability the run uses, is needed', async () => {
    const settings = [
      'User',
      'RestrictNamespaces',
      'ProtectControlGroups',
      'ProtectHostname',
      'RestrictAddressFamilies',
      'RestrictSUIDSGID',
    ]
    // The rest of the set are for steps not probed here: runc kill, set-gid files.
    const caps = [
      'CAP_SYS_ADMIN',
      'CAP_SETUID',
      'CAP_SETGID',
      'CAP_NET_ADMIN',
      'CAP_CHOWN',
      'CAP_FOWNER',
      'CAP_DAC_OVERRIDE',
    ]
    const variants: Record<string, string> = {}
    for (const setting of settings) variants[`without-${setting}`] = without(setting)
    for (const cap of caps) {
      const dropIn = without(`CapabilityBoundingSet=${cap}`)
      const line = dropIn.split('\n').find((l) => l.startsWith('CapabilityBoundingSet='))
      expect(line).not.toContain(cap)
      variants[`without-${cap}`] = dropIn
    }
    const r = await startAll(variants)
    const ranAnyway = Object.entries(r)
      .filter(([, v]) => v.ok)
      .map(([name]) => name)
    expect(ranAnyway).toEqual([])
    // Each failed in runc or in the run's steps, not elsewhere.
    for (const [name, v] of Object.entries(r))
      expect(v.log, name).toMatch(/runc run failed|not permitted|permission denied|superuser/i)
  })
})
