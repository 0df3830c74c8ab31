/**
 * The OCI runtime-spec `config.json` an image capsule runs under. Built here from scratch (not
 * from umoci's or the image's): only the command, environment, working directory and user come
 * from the image config, already checked by `readRunConfig`. No network (a new, empty network
 * namespace), read-only rootfs, no capabilities, no new privileges, a default-deny seccomp
 * filter (seccomp.ts), cgroup memory / CPU / pid limits, one writable directory
 * (`/digicap/output`), the input mounted read-only.
 */
import type { ImageRunConfig } from '@digicap/oci'
import { INPUT_PATH, OUTPUT_DIR } from '@digicap/oci'
import { seccompProfile } from './seccomp.ts'

export interface ContainerLimits {
  readonly memoryBytes: number
  /** CPU share as a fraction of one core (0.5 = half a core). */
  readonly cpus: number
  readonly pids: number
  /** Largest file the process may write (RLIMIT_FSIZE), bytes. */
  readonly fileSizeBytes: number
}

export interface RuntimeSpecInput {
  readonly run: ImageRunConfig
  readonly limits: ContainerLimits
  /** Host path of the input file (bind-mounted read-only at /digicap/input). */
  readonly inputFile: string
  /** Host path of the output directory (bind-mounted at /digicap/output). */
  readonly outputDir: string
  /** cgroup path of the container (under the host's cgroup root). */
  readonly cgroupsPath: string
}

const CPU_PERIOD_US = 100_000
const LOCKED = ['nosuid', 'nodev', 'noexec']

/** The `config.json` object (runtime-spec 1.0). */
export function runtimeSpec(p: RuntimeSpecInput): Record<string, unknown> {
  const { run, limits } = p
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: run.uid, gid: run.gid },
      args: run.args,
      env: run.env.some((e) => e.startsWith('PATH='))
        ? run.env
        : ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', ...run.env],
      cwd: run.cwd,
      capabilities: { bounding: [], effective: [], permitted: [], inheritable: [], ambient: [] },
      rlimits: [
        { type: 'RLIMIT_NOFILE', hard: 256, soft: 256 },
        { type: 'RLIMIT_FSIZE', hard: limits.fileSizeBytes, soft: limits.fileSizeBytes },
        { type: 'RLIMIT_CORE', hard: 0, soft: 0 },
      ],
      noNewPrivileges: true,
    },
    root: { path: 'rootfs', readonly: true },
    hostname: 'capsule',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc', options: LOCKED },
      {
        destination: '/dev',
        type: 'tmpfs',
        source: 'tmpfs',
        options: ['nosuid', 'strictatime', 'mode=755', 'size=64k'],
      },
      {
        destination: '/dev/pts',
        type: 'devpts',
        source: 'devpts',
        options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'],
      },
      {
        destination: '/dev/shm',
        type: 'tmpfs',
        source: 'shm',
        options: [...LOCKED, 'mode=1777', 'size=1m'],
      },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: [...LOCKED, 'ro'] },
      {
        destination: '/tmp',
        type: 'tmpfs',
        source: 'tmpfs',
        options: [...LOCKED, 'mode=1777', 'size=1m'],
      },
      {
        destination: INPUT_PATH,
        type: 'bind',
        source: p.inputFile,
        options: ['rbind', 'ro', ...LOCKED],
      },
      {
        destination: OUTPUT_DIR,
        type: 'bind',
        source: p.outputDir,
        options: ['rbind', 'rw', ...LOCKED],
      },
    ],
    linux: {
      cgroupsPath: p.cgroupsPath,
      resources: {
        devices: [{ allow: false, access: 'rwm' }],
        memory: { limit: limits.memoryBytes, swap: limits.memoryBytes },
        cpu: {
          quota: Math.max(1000, Math.round(limits.cpus * CPU_PERIOD_US)),
          period: CPU_PERIOD_US,
        },
        pids: { limit: limits.pids },
      },
      namespaces: [
        { type: 'pid' },
        { type: 'network' },
        { type: 'ipc' },
        { type: 'uts' },
        { type: 'mount' },
      ],
      maskedPaths: [
        '/proc/acpi',
        '/proc/asound',
        '/proc/kcore',
        '/proc/keys',
        '/proc/latency_stats',
        '/proc/timer_list',
        '/proc/timer_stats',
        '/proc/sched_debug',
        '/sys/firmware',
        '/proc/scsi',
      ],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
      seccomp: seccompProfile(),
    },
  }
}
