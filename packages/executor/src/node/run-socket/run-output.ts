/**
 * What `executor-node run` prints for a finished run, whoever ran it (its own node, or the
 * daemon through the run socket, whose result arrives as JSON with the output as 0x hex).
 */
import { writeFile } from 'node:fs/promises'
import { printable } from '../printable.ts'

/** The fields of a run's result the command prints (`RunCapsuleResult`, or its JSON). */
export interface RunOutputSource {
  readonly runId: unknown
  readonly capsuleId: unknown
  readonly grantId: unknown
  readonly path: unknown
  readonly deliveries: unknown
  readonly timings: unknown
  readonly cleanup: unknown
  /** The output: bytes, or (from the daemon) 0x hex. */
  readonly result: unknown
}

/** The document (`--json`) and the text; with `out`, the output is written there (0600). */
export async function runOutput(
  r: RunOutputSource,
  p: { readonly out?: string | undefined; readonly startup: Record<string, unknown> },
): Promise<{ doc: Record<string, unknown>; text: string }> {
  const bytes =
    typeof r.result === 'string'
      ? new Uint8Array(Buffer.from(r.result.replace(/^0x/, ''), 'hex'))
      : (r.result as Uint8Array)
  if (p.out) await writeFile(p.out, bytes, { mode: 0o600 })
  const result = p.out ? undefined : printable(bytes)
  const { runId, capsuleId, grantId, path, deliveries, timings, cleanup } = r
  const ids = { runId, capsuleId, grantId, path, result, resultBytes: bytes.byteLength }
  return {
    doc: { ...ids, deliveries, timings, startup: p.startup, cleanup },
    text: p.out ? `result written to ${p.out}\n` : `${result}\n`,
  }
}

/** The progress display's first line: the start-up, split into process, modules and node. */
export function startLine(
  cid: string,
  s: { ms: number; processMs: number; modulesMs: number; nodeMs: number },
): string {
  const ms = (n: number) => n.toFixed(0)
  return `run ${cid}\n  ✓ ${'start'.padEnd(8)} ${ms(s.ms).padStart(6)} ms  process ${ms(s.processMs)}, modules ${ms(s.modulesMs)}, node ${ms(s.nodeMs)}\n`
}

/**
 * Said on stderr after a one-shot run whose results wait on IPFS for offline receivers: their
 * deliveries are kept in the data folder (`pending-results/`), and the next node on it sends
 * them when the receivers connect.
 */
export const pendingNote = (pending: number): string =>
  pending > 0
    ? `  ${pending} result(s) for offline receivers are stored on IPFS and kept in pending-results/: the next \`executor-node serve\` on this folder delivers them when they connect\n`
    : ''

/** `executor-node run`'s flags, as parsed. */
export interface RunFlags {
  readonly fast?: boolean | undefined
  readonly 'no-fallback'?: boolean | undefined
  readonly 'keyguard-addr'?: readonly string[] | undefined
  readonly arg?: readonly string[] | undefined
  readonly fee: bigint
  /** Seconds. */
  readonly 'fetch-timeout'?: number | undefined
}

/** The run's options from the command's flags (the same for its own node and the daemon). */
export function runOptionsOf(flags: RunFlags) {
  const timeout = flags['fetch-timeout']
  return {
    ...(flags.fast ? { fast: true } : {}),
    ...(timeout === undefined ? {} : { fetchTimeoutMs: Math.round(timeout * 1000) }),
    fallbackToChain: !flags['no-fallback'],
    keyguardAddrs: flags['keyguard-addr'] ?? [],
    args: flags.arg ?? [],
    fee: flags.fee,
  }
}
