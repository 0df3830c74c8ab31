/** Counting the RPCs' answers: which one (if any) a quorum gave, and who dissented. */
import { QuorumError } from '../errors.ts'
import type { DisagreementEvent, Dissent } from './rpc-quorum.ts'

export interface Tally<T> {
  /** The answer at least `quorum` RPCs gave, if any. */
  readonly winner: { readonly value: T } | undefined
  /** Every RPC that did not give the winning answer (all of them when there is none). */
  readonly dissent: Dissent[]
  /** How many different well-formed answers came back. */
  readonly answers: number
  /** The first error, for `cause`. */
  readonly firstError: unknown
}

/** A JSON form that keeps bigints apart from numbers and strings. */
export const defaultKey = (value: unknown): string =>
  JSON.stringify(value, (_k, x) => (typeof x === 'bigint' ? `${x}n` : x)) ?? 'undefined'

function errorText(err: unknown): string {
  const e = err as { code?: unknown; shortMessage?: unknown; message?: unknown }
  const text =
    typeof e?.code === 'string'
      ? e.code
      : String(e?.shortMessage ?? e?.message ?? err).split('\n')[0]
  return (text ?? '').slice(0, 120)
}

export function tally<T>(
  results: readonly PromiseSettledResult<T>[],
  names: readonly string[],
  quorum: number,
  key: (value: T) => string,
): Tally<T> {
  const groups = new Map<string, { value: T; members: number[] }>()
  let firstError: unknown
  results.forEach((r, i) => {
    if (r.status === 'rejected') {
      firstError ??= r.reason
      return
    }
    const k = key(r.value)
    const g = groups.get(k) ?? { value: r.value, members: [] }
    g.members.push(i)
    groups.set(k, g)
  })
  // With a quorum below a majority two answers can both reach it: then neither is trusted.
  const reached = [...groups.values()].filter((g) => g.members.length >= quorum)
  const best = reached.length === 1 ? reached[0] : undefined
  // Without a winner, `answer` numbers the answers so that the RPCs that agreed show as such.
  const answerOf = new Map<number, number>()
  if (best === undefined) {
    ;[...groups.values()].forEach((g, a) => {
      for (const i of g.members) answerOf.set(i, a)
    })
  }
  const dissent: Dissent[] = []
  results.forEach((r, i) => {
    if (best?.members.includes(i)) return
    const rpc = names[i] ?? `#${i}`
    const answer = answerOf.get(i)
    dissent.push(
      r.status === 'rejected'
        ? { rpc, index: i, kind: 'failed', error: errorText(r.reason) }
        : { rpc, index: i, kind: 'differs', ...(answer === undefined ? {} : { answer }) },
    )
  })
  return {
    winner: best === undefined ? undefined : { value: best.value },
    dissent,
    answers: groups.size,
    firstError,
  }
}

/**
 * `read` from every source at once and the answer at least `quorum` of them gave (one source:
 * its answer as read); `onDisagreement` hears the dissent of a quorum's answer. Both quorums
 * (ethers' and plain JSON-RPC's) agree through this.
 * @throws {QuorumError} when no answer reaches the quorum (`hint`: what to do).
 */
export async function agreeAcross<S, T>(
  sources: readonly S[],
  p: {
    names: readonly string[]
    quorum: number
    operation: string
    hint: string
    onDisagreement?: ((event: DisagreementEvent) => void) | undefined
  },
  read: (source: S, index: number) => Promise<T>,
  key: (value: T) => string,
): Promise<T> {
  if (sources.length === 1) return read(sources[0] as S, 0)
  const results = await Promise.allSettled(sources.map((s, i) => read(s, i)))
  const t = tally(results, p.names, p.quorum, key)
  if (t.winner !== undefined) {
    if (t.dissent.length > 0) p.onDisagreement?.({ operation: p.operation, dissent: t.dissent })
    return t.winner.value
  }
  throw new QuorumError(
    `Fewer than ${p.quorum} of ${sources.length} RPCs agree on ${p.operation}`,
    {
      details: { operation: p.operation, quorum: p.quorum, answers: t.answers, dissent: t.dissent },
      hint: p.hint,
      cause: t.firstError,
    },
  )
}
