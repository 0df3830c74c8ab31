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
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
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
  /**
   * Manufactures the TPM first with `swtpm_setup --create-ek-cert`, as a TPM maker does: an RSA
   * EK and its certificate in NV index `0x01c00002`, issued by a CA made for this TPM alone
   * (`Swtpm.ekRoots`). Only with a fresh state directory. Default false.
   */
  ekCertificate?: boolean
}

export interface Swtpm {
  /** TCTI string for tpm2-tools: `swtpm:host=127.0.0.1,port=<port>`. */
  readonly tcti: string
  /** TPM command port (the control port is `port + 1`). */
  readonly port: number
  readonly stateDir: string
  readonly pid: number
  /**
   * With `ekCertificate`: the PEM of the CA certificates that issued the EK certificate (the
   * issuer and its root), what a verifier trusts as this TPM's maker.
   */
  readonly ekRoots?: string
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
 * Manufactures a TPM state in `stateDir` as `swtpm_setup` does for a VM: an RSA 2048 EK (the TCG
 * default template) and its certificate in NV, issued by a local CA made in `<stateDir>/ca`
 * (nothing in `/var/lib/swtpm-localca` is read or written). Returns the CA certificates' PEM.
 */
async function manufacture(stateDir: string): Promise<string> {
  const ca = join(stateDir, 'ca')
  await mkdir(ca, { recursive: true, mode: 0o700 })
  const caConfig = join(ca, 'swtpm-localca.conf')
  await writeFile(
    caConfig,
    [
      `statedir = ${ca}`,
      `signingkey = ${join(ca, 'signkey.pem')}`,
      `issuercert = ${join(ca, 'issuercert.pem')}`,
      `certserial = ${join(ca, 'certserial')}`,
      '',
    ].join('\n'),
  )
  const setupConfig = join(ca, 'swtpm_setup.conf')
  await writeFile(
    setupConfig,
    [
      'create_certs_tool = swtpm_localca',
      `create_certs_tool_config = ${caConfig}`,
      'active_pcr_banks = sha256',
      '',
    ].join('\n'),
  )
  await execa('swtpm_setup', [
    '--tpm2',
    '--tpmstate',
    stateDir,
    '--create-ek-cert',
    '--config',
    setupConfig,
    '--overwrite',
  ])
  const pems = await Promise.all(
    ['issuercert.pem', 'swtpm-localca-rootca-cert.pem'].map((f) => readFile(join(ca, f), 'utf8')),
  )
  return pems.join('')
}

/**
 * Starts a real `swtpm` (TPM 2.0, started and cleared) on a free loopback port pair.
 *
 * @throws {TpmUnavailableError} if swtpm or tpm2-tools are missing or the TPM never answers.
 */
export async function startSwtpm(options: StartSwtpmOptions = {}): Promise<Swtpm> {
  const ownDir = options.stateDir === undefined
  const stateDir = options.stateDir ?? (await mkdtemp(join(tmpdir(), 'digicap-swtpm-')))
  let ekRoots: string | undefined
  if (options.ekCertificate === true) {
    try {
      ekRoots = await manufacture(stateDir)
    } catch (cause) {
      if (ownDir) await rm(stateDir, { recursive: true, force: true })
      throw new TpmUnavailableError('swtpm_setup could not make the EK certificate', {
        details: { reason: 'swtpm-setup', error: String((cause as Error)?.message).slice(0, 300) },
        cause,
        hint: 'Install swtpm-tools (swtpm_setup, swtpm_localca) and gnutls-bin (certtool).',
      })
    }
  }
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
        ...(ekRoots === undefined ? {} : { ekRoots }),
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
