/**
 * @packageDocumentation
 *
 * `@digicap/tpm/testing` — a real software TPM for tests: {@link startSwtpm} runs
 * `swtpm` on a free loopback port pair with a temporary state directory and stops it.
 * Used by every package that needs a TPM in its tests (keyguard, attestation).
 *
 * @example
 * ```ts
 * import { startSwtpm } from '@digicap/tpm/testing'
 *
 * const tpm = await startSwtpm()
 * const sealer = tpm2Sealer({ tcti: tpm.tcti, createIfMissing: true })
 * // …
 * await tpm.stop()
 * ```
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import { TpmUnavailableError } from './errors.ts'

export interface StartSwtpmOptions {
  /**
   * State directory to use (an existing TPM's state to restart it). It is kept on `stop()`.
   * Default: a fresh temporary directory, removed on `stop()`.
   */
  stateDir?: string
  /** The swtpm binary. Default `swtpm` on `PATH`. */
  swtpmPath?: string
  /** How long to wait for the TPM to answer. Default 10 000 ms. */
  startTimeoutMs?: number
}

export interface Swtpm {
  /** TCTI string for tpm2-tools: `swtpm:host=127.0.0.1,port=<port>`. */
  readonly tcti: string
  /** TPM command port (the control port is `port + 1`). */
  readonly port: number
  readonly stateDir: string
  readonly pid: number
  /** Stops swtpm and, unless the caller gave `stateDir`, deletes its state. Idempotent. */
  stop(): Promise<void>
}

function listenOn(port: number): Promise<{ port: number; close: () => Promise<void> }> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => {
      const address = server.address()
      const bound = typeof address === 'object' && address !== null ? address.port : 0
      resolve({ port: bound, close: () => new Promise((r) => server.close(() => r())) })
    })
  })
}

/** Finds P such that P and P+1 are both free on loopback right now. */
async function freePortPair(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const first = await listenOn(0)
    if (first.port >= 65535) {
      await first.close()
      continue
    }
    try {
      const second = await listenOn(first.port + 1)
      await second.close()
      await first.close()
      return first.port
    } catch {
      await first.close()
    }
  }
  throw new TpmUnavailableError('No free port pair for swtpm', { details: { reason: 'ports' } })
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => child.once('exit', () => resolve()))
}

async function waitUntilAnswering(
  tcti: string,
  child: ChildProcess,
  timeoutMs: number,
  gaveUp: () => boolean,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (gaveUp() || child.exitCode !== null || child.signalCode !== null) return false
    const probe = await execa('tpm2_getrandom', ['1', '--hex'], {
      env: { TPM2TOOLS_TCTI: tcti },
      reject: false,
      timeout: 2000,
    })
    if (!probe.failed) return true
    await new Promise((r) => setTimeout(r, 25))
  }
  return false
}

/**
 * Starts a real `swtpm` (TPM 2.0, started and cleared) on a free loopback port pair.
 *
 * @throws {TpmUnavailableError} if swtpm or tpm2-tools are missing or the TPM never answers.
 */
export async function startSwtpm(options: StartSwtpmOptions = {}): Promise<Swtpm> {
  const ownDir = options.stateDir === undefined
  const stateDir = options.stateDir ?? (await mkdtemp(join(tmpdir(), 'digicap-swtpm-')))
  let lastError = ''
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePortPair()
    const tcti = `swtpm:host=127.0.0.1,port=${port}`
    const child = spawn(
      options.swtpmPath ?? 'swtpm',
      [
        'socket',
        '--tpm2',
        '--tpmstate',
        `dir=${stateDir}`,
        '--server',
        `type=tcp,port=${port},bindaddr=127.0.0.1`,
        '--ctrl',
        `type=tcp,port=${port + 1},bindaddr=127.0.0.1`,
        '--flags',
        'not-need-init,startup-clear',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    )
    let stderr = ''
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString()
    })
    let spawnFailed = false
    const spawnError = new Promise<Error>((resolve) => child.once('error', resolve))
    const ready = await Promise.race([
      waitUntilAnswering(tcti, child, options.startTimeoutMs ?? 10_000, () => spawnFailed),
      spawnError.then((err) => {
        spawnFailed = true
        lastError = err.message
        return false
      }),
    ])
    if (ready && child.pid !== undefined) {
      let stopped: Promise<void> | undefined
      return {
        tcti,
        port,
        stateDir,
        pid: child.pid,
        stop() {
          stopped ??= (async () => {
            child.kill('SIGTERM')
            const timer = setTimeout(() => child.kill('SIGKILL'), 2000)
            await exited(child)
            clearTimeout(timer)
            if (ownDir) await rm(stateDir, { recursive: true, force: true })
          })()
          return stopped
        },
      }
    }
    if (spawnFailed || child.pid === undefined) break
    child.kill('SIGKILL')
    await exited(child)
    lastError ||= stderr.slice(0, 300)
  }
  if (ownDir) await rm(stateDir, { recursive: true, force: true })
  throw new TpmUnavailableError('swtpm did not start', {
    details: { reason: 'swtpm-start', error: lastError },
    hint: 'Install swtpm and tpm2-tools (Debian: apt install swtpm swtpm-tools tpm2-tools).',
  })
}
