/**
 * "TPM reachable" as a real round trip: a random canary key is wrapped once, and each probe
 * unwraps it in the sealer (for the TPM sealer: an RSA decryption inside the TPM, over its
 * encrypted session, under the key's PCR policy) and compares. A sealer's `describe()` and
 * `publicKey()` answer from memory after start, so they would stay green with the TPM gone.
 * The canary protects nothing; its unwrapped copy is zeroed at once.
 */
import { HealthProbeError } from '../errors.ts'

/** What the probe calls on a sealer (`@digicap/keyguard`'s Sealer). */
export interface ProbedSealer {
  describe(): Promise<{ kind: string; hardwareBacked: boolean }>
  wrap(dataKey: Uint8Array): Promise<unknown>
  unwrap(wrapped: never): Promise<Uint8Array>
}

export interface SealerProbeAnswer {
  kind: string
  hardwareBacked: boolean
  /** The unwrap's round trip, ms. */
  ms: number
}

const equal = (a: Uint8Array, b: Uint8Array) =>
  a.byteLength === b.byteLength && a.every((v, i) => v === b[i])

/**
 * Returns a probe of `sealer`. Binds the sealer's methods now: built before metrics wrap them
 * (`observeSealer`), probes are not counted as the keyguard's unwraps.
 *
 * @param timeoutMs - A probe that takes longer fails (`HEALTH_PROBE`, `timeout`). Default 5000.
 */
export function sealerProbe(
  sealer: ProbedSealer,
  { timeoutMs = 5_000 }: { timeoutMs?: number } = {},
): () => Promise<SealerProbeAnswer> {
  const describe = sealer.describe.bind(sealer)
  const wrap = sealer.wrap.bind(sealer)
  const unwrap = sealer.unwrap.bind(sealer) as (w: unknown) => Promise<Uint8Array>
  const canary = crypto.getRandomValues(new Uint8Array(32))
  let wrapped: Promise<unknown> | undefined
  async function roundTrip(): Promise<SealerProbeAnswer> {
    if (wrapped === undefined) {
      wrapped = wrap(canary)
      wrapped.catch(() => {
        wrapped = undefined
      })
    }
    const w = await wrapped
    const t0 = performance.now()
    const out = await unwrap(w)
    const ms = performance.now() - t0
    const same = equal(out, canary)
    out.fill(0)
    if (!same) throw new HealthProbeError('The sealer unwrapped the canary wrong', 'mismatch')
    const d = await describe()
    return { kind: d.kind, hardwareBacked: d.hardwareBacked, ms }
  }
  return async () => {
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(new HealthProbeError(`The sealer did not answer in ${timeoutMs} ms`, 'timeout')),
        timeoutMs,
      )
    })
    try {
      return await Promise.race([roundTrip(), late])
    } finally {
      clearTimeout(timer)
    }
  }
}
