import { LimitHit } from './meter.ts'

const ERRNO_SUCCESS = 0
const ERRNO_BADF = 8
const ERRNO_INVAL = 28
const SUBSCRIPTION_SIZE = 48
const EVENT_SIZE = 32
const EVENTTYPE_CLOCK = 0
const ABSTIME = 1

/**
 * `poll_oneoff` for the in-memory WASI host (internal, worker side). Descriptor
 * subscriptions are ready at once (every descriptor is in memory and never blocks); with
 * none, the call sleeps until the earliest clock subscription — but never past the run's
 * deadline: a sleep that would end after it stops the module with a time {@link LimitHit}
 * right away. The sleep is an `Atomics.wait` on a private cell, bounded by that deadline,
 * so the thread is never parked in a call that outlives the run.
 *
 * @param deadline `performance.now()` value at which the run's time is up.
 */
export function pollOneoff(
  memory: () => WebAssembly.Memory,
  deadline: number,
  isOpen: (fd: number) => boolean,
): (inPtr: number, outPtr: number, n: number, neventsPtr: number) => number {
  const cell = new Int32Array(new SharedArrayBuffer(4))
  return (inPtr, outPtr, n, neventsPtr) => {
    if (n === 0) return ERRNO_INVAL
    const dv = new DataView(memory().buffer)
    const ready: Array<{ userdata: bigint; type: number; error: number }> = []
    const clocks: Array<{ userdata: bigint; ms: number }> = []
    for (let i = 0; i < n; i++) {
      const at = inPtr + i * SUBSCRIPTION_SIZE
      const userdata = dv.getBigUint64(at, true)
      const type = dv.getUint8(at + 8)
      if (type === EVENTTYPE_CLOCK) {
        const id = dv.getUint32(at + 16, true)
        const timeout = dv.getBigUint64(at + 24, true)
        const flags = dv.getUint16(at + 40, true)
        if (id > 3) {
          ready.push({ userdata, type, error: ERRNO_INVAL })
          continue
        }
        const nowNs =
          id === 0 ? BigInt(Date.now()) * 1_000_000n : BigInt(Math.round(performance.now() * 1e6))
        const ns = (flags & ABSTIME) !== 0 ? timeout - nowNs : timeout
        clocks.push({ userdata, ms: ns <= 0n ? 0 : Number(ns) / 1e6 })
      } else if (type === 1 || type === 2) {
        const fd = dv.getUint32(at + 16, true)
        ready.push({ userdata, type, error: isOpen(fd) ? ERRNO_SUCCESS : ERRNO_BADF })
      } else {
        return ERRNO_INVAL
      }
    }
    if (ready.length === 0) {
      const wait = Math.min(...clocks.map((c) => c.ms))
      if (performance.now() + wait > deadline) throw new LimitHit('time')
      if (wait > 0) Atomics.wait(cell, 0, 0, wait)
      for (const c of clocks) {
        if (c.ms <= wait) ready.push({ userdata: c.userdata, type: EVENTTYPE_CLOCK, error: 0 })
      }
    }
    const out = new DataView(memory().buffer)
    ready.forEach((e, i) => {
      const at = outPtr + i * EVENT_SIZE
      for (let b = 0; b < EVENT_SIZE; b++) out.setUint8(at + b, 0)
      out.setBigUint64(at, e.userdata, true)
      out.setUint16(at + 8, e.error, true)
      out.setUint8(at + 10, e.type)
    })
    out.setUint32(neventsPtr, ready.length, true)
    return ERRNO_SUCCESS
  }
}
