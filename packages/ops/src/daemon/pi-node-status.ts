/**
 * The pi-node's status snapshot: capsules from the key store, grants and releases from the
 * release journal (and the fast path's refusals, which have no grant to journal, from the
 * keyguard's events since start), keyguard health from the running daemon.
 */
import { cachedAnswer } from '../health/cached.ts'
import { type ProbedSealer, sealerProbe } from '../health/sealer-probe.ts'
import type { HealthRow, HistoryRow, StatusSnapshot } from '../status/snapshot.ts'
import { type JournalRow, readJournal } from './journal.ts'

/** What the snapshot reads of the pi-node's owner node (`@digicap/owner/node`'s OwnerNode). */
export interface StatusOwner {
  status(): Promise<{
    operator: {
      address?: string | undefined
      approved?: boolean | undefined
      balanceWei?: string | undefined
    }
  }>
  /** Probed for the `tpm` health row (a canary unwrap: see `sealerProbe`). */
  readonly sealer: ProbedSealer
  readonly keyStore: {
    list(): Promise<string[]>
    get(id: string): Promise<
      | {
          capsuleId: string
          createdAt: string
          metadata: {
            cid?: string | undefined
            policy?: string | undefined
            name?: string | undefined
          }
        }
      | undefined
    >
  }
}

/** What the snapshot reads of the running daemon. */
export interface StatusDaemon {
  readonly peerId: string
  readonly keyguard: {
    status(): Promise<{
      running: boolean
      chain: { chainId: string; head: number | null; cursor: { number: number } | null }
      fastPath: { enabled: boolean }
    }>
    readonly events: EventTarget
  }
  /** Connected peers. */
  peers(): number
}

export interface StatusSourceOptions {
  title: string
  journalDir: string
  /** Rows of history shown. Default 100. */
  historyRows?: number
  /** How long a TPM probe's or the RPC's answer (success or failure) is reused, ms. Default 10 000. */
  cacheMs?: number
  /** A TPM probe taking longer fails. Default 5 000 ms. */
  probeTimeoutMs?: number
  /**
   * Whether a sealer that is not hardware-backed (the software key file, swtpm) counts as a
   * healthy `tpm` (`serve --allow-software-sealer`). Default false: the row is red, so
   * monitoring sees a keyguard running on the insecure fallback.
   */
  allowSoftwareSealer?: boolean
}

/** Events that are not in the journal: kept in memory, newest last, at most `max`. */
function recentEvents(events: EventTarget, max: number) {
  const rows: HistoryRow[] = []
  const push = (row: HistoryRow) => {
    rows.push(row)
    if (rows.length > max) rows.shift()
  }
  const on = (type: string, f: (d: Record<string, unknown>) => HistoryRow) =>
    events.addEventListener(type, (e) => push(f((e as CustomEvent).detail)))
  const now = () => new Date().toISOString()
  on('fast-path-refused', (d) => ({
    time: now(),
    outcome: 'refused',
    path: 'fast',
    reason: [d.reasonCode, d.reason].filter(Boolean).join(': '),
  }))
  on('release-failed', (d) => ({
    time: now(),
    outcome: 'failed',
    path: 'chain',
    grantId: String(d.grantId ?? ''),
    reason: String(d.reason ?? ''),
  }))
  return rows
}

function journalHistory(r: JournalRow): HistoryRow {
  const path = r.via === 'fast-path' ? 'fast' : 'chain'
  const base = { path, grantId: r.grantId, ...(r.capsuleId ? { capsuleId: r.capsuleId } : {}) }
  if (r.state === 'completed')
    return { ...base, time: r.completedAt ?? r.begunAt, outcome: 'served' }
  if (r.state === 'refused')
    return { ...base, time: r.refusedAt ?? r.begunAt, outcome: 'refused', reason: r.reason ?? '' }
  return { ...base, time: r.begunAt, outcome: 'accepted' }
}

const errorCode = (err: unknown) => String((err as { code?: unknown })?.code ?? 'failed')

/** Builds `snapshot()` for the status page and the health checks it shares with `/healthz`. */
export function piNodeStatusSource(pi: StatusOwner, daemon: StatusDaemon, o: StatusSourceOptions) {
  const recent = recentEvents(daemon.keyguard.events, 200)
  const cacheMs = o.cacheMs ?? 10_000
  const ownerStatus = cachedAnswer(cacheMs, () => pi.status())
  const sealerCheck = cachedAnswer(
    cacheMs,
    sealerProbe(pi.sealer, o.probeTimeoutMs === undefined ? {} : { timeoutMs: o.probeTimeoutMs }),
  )

  async function health(): Promise<HealthRow[]> {
    const kg = await daemon.keyguard.status()
    const rows: HealthRow[] = []
    try {
      const d = await sealerCheck()
      const accepted = d.hardwareBacked || o.allowSoftwareSealer === true
      rows.push({
        name: 'tpm',
        ok: accepted,
        text: `${d.kind} ${d.hardwareBacked ? 'hardware-backed' : accepted ? 'NOT hardware-backed (accepted)' : 'NOT hardware-backed (not accepted: serve --allow-software-sealer)'}, unwrap probe answered in ${d.ms.toFixed(0)} ms`,
      })
    } catch (err) {
      rows.push({ name: 'tpm', ok: false, text: `unreachable: ${errorCode(err)}` })
    }
    const lag =
      kg.chain.head !== null && kg.chain.cursor ? kg.chain.head - kg.chain.cursor.number : undefined
    rows.push({
      name: 'chain',
      ok: kg.chain.head !== null,
      text: `chain ${kg.chain.chainId} head ${kg.chain.head ?? '?'}, grant watcher ${lag === undefined ? 'not synced' : `${lag} blocks behind`}`,
    })
    try {
      const s = await ownerStatus()
      const op = s.operator
      rows.push({
        name: 'operator',
        ok: op.address === undefined || (op.approved !== false && op.balanceWei !== '0'),
        text:
          op.address === undefined
            ? 'none (audits use the owner account)'
            : `${op.address} ${op.approved === false ? 'NOT approved' : 'approved'}, balance ${op.balanceWei ?? '?'} wei`,
      })
    } catch (err) {
      rows.push({ name: 'operator', ok: false, text: `unknown: ${errorCode(err)}` })
    }
    rows.push({ name: 'peers', ok: true, text: `${daemon.peers()} connected` })
    rows.push({
      name: 'keyguard',
      ok: kg.running,
      text: `${kg.running ? 'running' : 'stopped'}, fast path ${kg.fastPath.enabled ? 'on' : 'off'}`,
    })
    return rows
  }

  async function snapshot(): Promise<StatusSnapshot> {
    const [journal, ids, healthRows] = await Promise.all([
      readJournal(o.journalDir),
      pi.keyStore.list(),
      health(),
    ])
    const runs = new Map<string, number>()
    for (const r of journal)
      if (r.state === 'completed' && r.capsuleId)
        runs.set(r.capsuleId, (runs.get(r.capsuleId) ?? 0) + 1)
    const records = await Promise.all(ids.map((id) => pi.keyStore.get(id).catch(() => undefined)))
    const capsules = records.flatMap((r) =>
      r === undefined
        ? []
        : [
            {
              cid: r.metadata.cid ?? '',
              capsuleId: r.capsuleId,
              policy: r.metadata.policy ?? '',
              runsUsed: runs.get(r.capsuleId) ?? 0,
              ...(r.metadata.name ? { name: r.metadata.name } : {}),
              sealedAt: r.createdAt,
            },
          ],
    )
    capsules.sort((a, b) => b.sealedAt.localeCompare(a.sealedAt))
    const history = [...journal.map(journalHistory), ...recent]
      .sort((a, b) => b.time.localeCompare(a.time))
      .slice(0, o.historyRows ?? 100)
    const pending = journal
      .filter((r) => r.state === 'begun')
      .map((r) => ({
        grantId: r.grantId,
        since: r.begunAt,
        ...(r.capsuleId ? { capsuleId: r.capsuleId } : {}),
      }))
    return {
      title: o.title,
      generatedAt: new Date().toISOString(),
      health: healthRows,
      capsules,
      history,
      pending,
    }
  }

  return { snapshot, health }
}
