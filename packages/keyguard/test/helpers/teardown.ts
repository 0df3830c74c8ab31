/**
 * Tear-down that survives a failing test: every part a set-up starts is registered the moment
 * it exists, and `run()` stops them all, newest first, even when some stop throws (the errors
 * are raised together afterwards). A set-up that fails half-way runs it before rethrowing, so a
 * failed `beforeAll` leaves no anvil, swtpm or temp dir behind.
 */

export interface Teardown {
  /** Registers `stop` (run once, newest first). */
  add(name: string, stop: () => unknown): void
  /**
   * Kills `pid` with SIGKILL if the process exits before `run()` (a worker that crashed or was
   * cut at its timeout): for children that, unlike anvil, do not do it themselves (swtpm).
   */
  killOnExit(pid: number): void
  /** Stops everything registered; later calls wait for the first. */
  run(): Promise<void>
}

export function teardown(): Teardown {
  const stops: { name: string; stop: () => unknown }[] = []
  const pids = new Set<number>()
  const killAll = (): void => {
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // already gone
      }
    }
  }
  let ran: Promise<void> | undefined
  return {
    add(name, stop) {
      stops.push({ name, stop })
    },
    killOnExit(pid) {
      if (pids.size === 0) process.once('exit', killAll)
      pids.add(pid)
    },
    run() {
      ran ??= (async () => {
        const failures: Error[] = []
        for (const { name, stop } of stops.splice(0).reverse()) {
          try {
            await stop()
          } catch (err) {
            failures.push(new Error(`tear-down of ${name} failed`, { cause: err }))
          }
        }
        process.removeListener('exit', killAll)
        pids.clear()
        if (failures.length > 0) throw new AggregateError(failures, 'tear-down failed')
      })()
      return ran
    },
  }
}

/**
 * Runs `build` with a fresh tear-down; if it throws, tears down what it had started and
 * rethrows the set-up's error.
 */
export async function settingUp<T>(build: (t: Teardown) => Promise<T>): Promise<T> {
  const t = teardown()
  try {
    return await build(t)
  } catch (err) {
    await t.run().catch(() => {})
    throw err
  }
}
