/**
 * The `oci` sandbox: an image capsule run under runc, no Docker daemon. With the data key the
 * grant released: the committed image is pulled from the store (digest-checked), its layers
 * are opened by the strict decryptor (`provider.digicap` recipient) into a private tmpfs,
 * unpacked by umoci, and run by runc with no network, a read-only rootfs, no capabilities, no
 * new privileges and cgroup limits. The result is stdout or a file in /digicap/output, as the
 * image's committed config says. The container is always deleted and the tmpfs unmounted.
 */
import { execFile, execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { constants, type Stats } from 'node:fs'
import { chmod, chown, mkdir, open, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { InvalidArgumentError, toHex } from '@digicap/capsule-core'
import {
  type BlobStore,
  checkManifest,
  decryptImage,
  digicapUnwrapper,
  OciFormatError,
  openLayout,
  parseImageSpec,
  pullImage,
  readImageDistribution,
  readRunConfig,
} from '@digicap/oci'
import {
  SandboxAbortedError,
  SandboxCrashError,
  SandboxMemoryError,
  SandboxOutputLimitError,
  SandboxTimeoutError,
  sanitizeProgramText,
} from '../../errors.ts'
import { createRunWorkspace } from '../../run/workspace.ts'
import { checkJob, LogCollector, resolveOutputLimits } from '../limits.ts'
import type { OutputLimits, Sandbox, SandboxJob, SandboxResult } from '../types.ts'
import { prepareMountPoints } from './mount-points.ts'
import {
  checkOwnedDir,
  defaultOciStateDir,
  ownerTag,
  type SweepReport,
  sweepOciLeftovers,
} from './run-dir.ts'
import { type RunGuard, startRunGuard } from './run-guard.ts'
import { runContainer } from './runc.ts'
import { runtimeSpec } from './runtime-spec.ts'
import { createScratch } from './scratch.ts'

const execFileAsync = promisify(execFile)

export interface OciSandboxInit extends OutputLimits {
  /** Where image blobs come from: `heliaCapsuleStore(node.helia)` (bitswap from any peer). */
  readonly store: BlobStore
  readonly runc?: string | undefined
  readonly umoci?: string | undefined
  /** CPU share of one core (default 1). */
  readonly cpus?: number | undefined
  /** Most processes in the container (default 64). */
  readonly pids?: number | undefined
  /** Size cap of the run's tmpfs: sealed + plain image + rootfs (default 2 GiB). */
  readonly scratchBytes?: number | undefined
  /** Mount a tmpfs for the scratch space (default true; falls back to a private dir). */
  readonly tmpfs?: boolean | undefined
  /** Per-blob fetch limit, ms (default 120 000). */
  readonly fetchTimeoutMs?: number | undefined
  /**
   * The executor's OCI state directory: every run's tmpfs, rootfs and runc state live under
   * it, named after the executor process. Runs left by a dead executor are swept when the
   * sandbox is made. It must be a folder only this uid controls (made 0700 when missing; a
   * link, another user's folder, a group/other-writable one, or one under a folder another
   * user may rename in is refused with `OCI_STATE_DIR`, ADR 0075). Default: `/run/digicap-oci`
   * for root, else `$XDG_RUNTIME_DIR/digicap-oci`, else `digicap-oci-<uid>` under the OS temp
   * dir (`defaultOciStateDir()`).
   */
  readonly stateDir?: string | undefined
  /** Called once the start-up sweep of a crashed executor's runs is done. */
  readonly onSweep?: ((report: SweepReport) => void) | undefined
  /** Called as the run goes: pulled, decrypted, unpacked, tmpfs or not. */
  readonly onStep?: ((step: OciRunStep) => void) | undefined
}

export interface OciRunStep {
  readonly step: 'scratch' | 'pull' | 'decrypt' | 'unpack' | 'container'
  readonly ms: number
  readonly detail?: Record<string, unknown> | undefined
}

function versionOf(bin: string): string {
  try {
    return (
      execFileSync(bin, ['--version'], { encoding: 'utf8', timeout: 10_000 }).split('\n')[0] ??
      'unknown'
    )
  } catch {
    return 'missing'
  }
}

/**
 * @example
 * ```ts
 * const sandboxes = { ...defaultSandboxes(), oci: ociSandbox({ store: heliaCapsuleStore(node.helia) }) }
 * ```
 */
export function ociSandbox(init: OciSandboxInit): Sandbox {
  const limits = resolveOutputLimits(init)
  const runc = init.runc ?? 'runc'
  const umoci = init.umoci ?? 'umoci'
  const runtimeId = `oci/${versionOf(runc)}/${versionOf(umoci)}`
  const stateDir = init.stateDir ?? defaultOciStateDir()
  // A container must not outlive its executor: what a crashed one left is removed at start.
  const swept = sweepOciLeftovers({ stateDir, runc }).then((report) => {
    try {
      init.onSweep?.(report)
    } catch {
      // a failing display must not fail the sandbox
    }
  })
  const step = (s: OciRunStep) => {
    try {
      init.onStep?.(s)
    } catch {
      // a failing progress display must not fail the run
    }
  }

  async function run(
    job: SandboxJob,
    options: Parameters<Sandbox['run']>[1] = {},
  ): Promise<SandboxResult> {
    checkJob(job, 'oci')
    if (!job.capsuleKey) {
      throw new InvalidArgumentError(
        'An oci job needs the capsule key (its layer options are sealed to it)',
      )
    }
    const spec = parseImageSpec(job.code)
    const ws = options.workspace ?? createRunWorkspace()
    const signal = options.signal
    const t0 = performance.now()
    let t = t0
    const lap = (s: OciRunStep['step'], detail?: Record<string, unknown>) => {
      const now = performance.now()
      step({ step: s, ms: now - t, detail })
      t = now
    }
    await swept
    // the owner in the id (its cgroup's name): the start-up sweep finds a dead executor's
    // cgroups even when its run directory is gone
    const id = `digicap-${randomBytes(8).toString('hex')}-${await ownerTag()}`
    const scratch = await createScratch(ws, {
      stateDir,
      sizeBytes: init.scratchBytes ?? 2 * 1024 * 1024 * 1024,
      tmpfs: init.tmpfs,
    })
    const stateRoot = join(scratch.dir, 'runc')
    // cleans up if this process dies from here on (runc gives a container no parent-death signal)
    const guard = startRunGuard({ runc, runDir: scratch.dir, stateRoot, containerId: id })
    try {
      lap('scratch', { tmpfs: scratch.tmpfs })
      const distribution = await readImageDistribution(
        init.store,
        spec.distribution,
        signal ? { signal } : {},
      )
      const pulled = await pullImage({
        store: init.store,
        distribution,
        manifestDigest: job.runtime.entry,
        to: join(scratch.dir, 'sealed'),
        timeoutMs: init.fetchTimeoutMs,
        signal,
      })
      lap('pull', { bytes: pulled.bytes })
      const capsuleId = toHex(job.capsuleKey.capsuleId)
      const key = job.capsuleKey.dataKey
      const unwrapper = digicapUnwrapper({ capsuleId, dataKey: async () => Uint8Array.from(key) })
      const spoolDir = join(scratch.dir, 'spool')
      await mkdir(spoolDir, { mode: 0o700 })
      let manifestDigest: string
      try {
        const [image] = await decryptImage({
          from: pulled.layout,
          to: join(scratch.dir, 'plain'),
          unwrappers: [unwrapper],
          manifestDigest: job.runtime.entry,
          spoolDir,
        })
        manifestDigest = image?.digest as string
      } finally {
        unwrapper.dispose()
      }
      if (signal?.aborted) throw new SandboxAbortedError('The run was aborted')
      lap('decrypt')
      const plain = await openLayout(join(scratch.dir, 'plain'))
      const entry = (await plain.readIndex()).manifests.find((m) => m.digest === manifestDigest)
      const manifest = checkManifest(await plain.readJson(entry as NonNullable<typeof entry>))
      const runConfig = await readRunConfig(plain, manifest)
      const bundle = join(scratch.dir, 'bundle')
      await mkdir(bundle, { mode: 0o700 })
      await unpack(umoci, `${plain.dir}:${pulled.ref}`, join(bundle, 'rootfs'), guard)
      await prepareMountPoints(join(bundle, 'rootfs'))
      lap('unpack')
      const inputFile = join(scratch.dir, 'input')
      // the plaintext goes only into a run directory checked again now (this uid's alone, in a
      // checked state directory), as a new file: O_CREAT|O_EXCL follows no link (ADR 0075)
      await checkOwnedDir(scratch.dir)
      await writeFile(inputFile, job.input, { mode: 0o444, flag: 'wx' })
      // the daemons run under umask 077 (ADR 0029), which made it 0400: unreadable by the
      // container's user; the file sits in the run's 0700 scratch, so 0444 shows it to no one else
      await chmod(inputFile, 0o444)
      const outputDir = join(scratch.dir, 'output')
      await mkdir(outputDir, { mode: 0o700 })
      await chown(outputDir, runConfig.uid, runConfig.gid)
      const cgroupsPath = `/digicap/${id}`
      await writeFile(
        join(bundle, 'config.json'),
        JSON.stringify(
          runtimeSpec({
            run: runConfig,
            limits: {
              memoryBytes: job.runtime.memoryLimitBytes,
              cpus: init.cpus ?? 1,
              pids: init.pids ?? 64,
              fileSizeBytes: limits.outputLimitBytes,
            },
            inputFile,
            outputDir,
            cgroupsPath,
          }),
        ),
      )
      const exit = await runContainer({
        runc,
        stateRoot,
        bundle,
        id,
        timeLimitMs: job.runtime.timeLimitMs,
        stdoutLimitBytes: limits.outputLimitBytes,
        stderrLimitBytes: limits.maxLogLines * limits.maxLogLineLength,
        signal,
        memoryCgroupDir: `/sys/fs/cgroup/memory${cgroupsPath}`,
        guard,
      })
      lap('container', { code: exit.code, killed: exit.killed, wallMs: exit.wallMs })
      const logs = new LogCollector(limits)
      for (const line of exit.stderr.toString('utf8').split('\n'))
        if (line.length > 0) logs.push(line)
      const details = { exitCode: exit.code, signal: exit.signal, wallMs: Math.round(exit.wallMs) }
      if (exit.killed === 'time') {
        throw new SandboxTimeoutError('The container ran past its time limit and was killed', {
          details: { ...details, timeLimitMs: job.runtime.timeLimitMs },
        })
      }
      if (exit.killed === 'aborted')
        throw new SandboxAbortedError('The run was aborted', { details })
      if (exit.killed === 'stdout-limit') {
        throw new SandboxOutputLimitError('The container wrote more than the output limit', {
          details: { ...details, outputLimitBytes: limits.outputLimitBytes },
        })
      }
      if (exit.oomKilled) {
        throw new SandboxMemoryError('The container hit its memory limit', {
          details: { ...details, memoryLimitBytes: job.runtime.memoryLimitBytes },
        })
      }
      if (exit.code !== 0) {
        throw new SandboxCrashError('The container exited with a failure', {
          details: {
            ...details,
            programMessage: sanitizeProgramText(logs.lines.slice(-3).join(' | ')),
          },
        })
      }
      let output: Uint8Array
      if (runConfig.result.kind === 'stdout') {
        output = new Uint8Array(exit.stdout)
      } else {
        output = await readResultFile(
          join(outputDir, runConfig.result.name),
          limits.outputLimitBytes,
        )
      }
      const copy = Uint8Array.from(output)
      output.fill(0)
      return {
        output: copy,
        logs: logs.lines,
        stats: {
          wallMs: performance.now() - t0,
          programMs: exit.wallMs,
          droppedLogLines: logs.dropped,
        },
      }
    } finally {
      await scratch.release().catch(() => {})
      if (!options.workspace) await ws.dispose()
      await guard.done()
    }
  }

  return { kind: 'oci', runtimeId, run, close: async () => {} }
}

/**
 * `umoci raw unpack`. The layers passed every digest check, so a failure here is the image's
 * own (not a tar, a layer bigger than the scratch space): an `OCI_FORMAT` error with umoci's
 * last words, not the tool's raw exit.
 */
async function unpack(
  umoci: string,
  image: string,
  rootfs: string,
  guard: RunGuard,
): Promise<void> {
  const unpacking = execFileAsync(umoci, ['raw', 'unpack', '--image', image, rootfs], {
    timeout: 300_000,
  })
  guard.watch(unpacking.child.pid)
  try {
    await unpacking
  } catch (cause) {
    const e = cause as { stderr?: string; code?: unknown; killed?: boolean }
    const said =
      String(e.stderr ?? '')
        .trim()
        .split('\n')
        .at(-1) ?? ''
    throw new OciFormatError("The image's layers do not unpack", {
      cause,
      details: {
        tool: 'umoci',
        exitCode: typeof e.code === 'number' ? e.code : undefined,
        ...(e.killed ? { killed: true } : {}),
        message: sanitizeProgramText(said.slice(-300)),
      },
      hint: 'Each layer must be a tar (optionally gzip or zstd) that fits the run scratch space.',
    })
  } finally {
    guard.unwatch(unpacking.child.pid)
  }
}

/** What `fstat` says a path is, in the words a refusal's details use. */
function fileType(st: Stats): string {
  if (st.isFIFO()) return 'fifo'
  if (st.isSocket()) return 'socket'
  if (st.isCharacterDevice()) return 'char-device'
  if (st.isBlockDevice()) return 'block-device'
  if (st.isDirectory()) return 'directory'
  if (st.isSymbolicLink()) return 'symlink'
  return 'other'
}

/**
 * Reads the result file the container left, refusing anything but a regular file. The container
 * chose what sits at that path: O_NOFOLLOW refuses a link, O_NONBLOCK keeps a FIFO (or a device)
 * from blocking the open, which would hold a libuv pool thread forever (four such runs stall
 * every fs call of the process) and never end the run; the fstat of the opened file decides.
 */
async function readResultFile(path: string, max: number): Promise<Uint8Array> {
  const file = path.slice(path.lastIndexOf('/') + 1)
  let fh: Awaited<ReturnType<typeof open>>
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK)
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code
    throw new SandboxCrashError(
      code === 'ELOOP' ? 'The result file is a symbolic link' : 'The container left no result file',
      { cause, details: { file, ...(code === 'ELOOP' ? { type: 'symlink' } : {}) } },
    )
  }
  try {
    const st = await fh.stat()
    if (!st.isFile()) {
      throw new SandboxCrashError('The result is not a regular file', {
        details: { file, type: fileType(st) },
        hint: 'The program must write its result as a regular file in /digicap/output.',
      })
    }
    if (st.size > max) {
      throw new SandboxOutputLimitError('The result file is larger than the output limit', {
        details: { size: st.size, outputLimitBytes: max },
      })
    }
    return new Uint8Array(await fh.readFile())
  } finally {
    await fh.close()
  }
}
