/**
 * A run's guard: a tiny `sh` in its own session that holds the read end of a pipe from the
 * executor. runc has no parent-death signal for a container, so when the executor dies (even
 * by SIGKILL) the kernel closes the pipe, the guard reads EOF and does the clean-up the
 * executor never got to: kills the processes it was told about (`runc run`, umoci), kills and
 * deletes the container, kills whatever is in the container's cgroup and removes it, unmounts
 * the run's tmpfs and removes the run directory. A run that ends normally sends `done` and the
 * guard exits without touching anything. The start-up sweep (`run-dir.ts`) covers a guard that
 * was killed too.
 */
import { type ChildProcess, spawn } from 'node:child_process'

export interface RunGuardInit {
  readonly runc: string
  /** The run directory (the tmpfs mount point, or a plain directory); removed on EOF. */
  readonly runDir: string
  /** runc's `--root` for this run. */
  readonly stateRoot: string
  /** The container id the run will use (it may not exist yet). */
  readonly containerId: string
}

export interface RunGuard {
  /** Kill this helper process too if the executor dies while it runs. */
  watch(pid: number | undefined): void
  /** The helper ended: forget its pid (it may be reused). */
  unwatch(pid: number | undefined): void
  /** The run cleaned up after itself: the guard exits doing nothing. Idempotent. */
  done(): Promise<void>
}

/**
 * Kills every process in the container's cgroup (`/digicap/<id>` of each v1 controller, or of
 * the v2 tree) until none is left, then removes it. A `runc run` killed mid-create leaves its
 * `runc init` (and, past it, the container) where `runc kill` and `delete` cannot see it: not
 * yet in runc's state, but already in the cgroup. SIGKILLed processes cannot fork, and the pids
 * limit bounds the rest: the loop ends. $3 is the container id.
 */
const CGROUP_KILL_SH = `for d in /sys/fs/cgroup/*/digicap/"$3" /sys/fs/cgroup/digicap/"$3"; do
  [ -d "$d" ] || continue
  i=0
  while [ $i -lt 100 ]; do
    procs=$(cat "$d/cgroup.procs" 2>/dev/null)
    [ -n "$procs" ] || break
    kill -9 $procs 2>/dev/null
    sleep 0.05
    i=$((i + 1))
  done
  rmdir "$d" 2>/dev/null
done
`

// Signals a terminal or a service stop sends are ignored: only EOF (the executor gone) or
// `done` ends the guard. Arguments: $1 runc, $2 state root, $3 container id, $4 run dir.
// Watched pids (`runc run` itself, umoci) are killed first: a runc left alive would go on
// creating the container after the clean-up.
const GUARD_SCRIPT = `trap '' HUP INT TERM PIPE
pids=
while IFS= read -r line; do
  case "$line" in
    done) exit 0 ;;
    "pid "*) pids="$pids \${line#pid }" ;;
    "unpid "*) pids=$(echo "$pids" | sed "s/ \${line#unpid }\\b//") ;;
  esac
done
for p in $pids; do kill -9 "$p" 2>/dev/null; done
"$1" --root "$2" kill "$3" KILL 2>/dev/null
"$1" --root "$2" delete --force "$3" 2>/dev/null
${CGROUP_KILL_SH}if grep -qF " $4 " /proc/self/mounts; then umount "$4" 2>/dev/null || umount -l "$4" 2>/dev/null; fi
rm -rf "$4"
`

/** Starts the guard; its pid is `pid` (tests kill it to leave work for the sweep). */
export function startRunGuard(init: RunGuardInit): RunGuard & { readonly pid: number | undefined } {
  const child: ChildProcess = spawn(
    '/bin/sh',
    [
      '-c',
      GUARD_SCRIPT,
      'digicap-run-guard',
      init.runc,
      init.stateRoot,
      init.containerId,
      init.runDir,
    ],
    // its own session: a Ctrl-C or a kill of the executor's process group leaves it standing
    { stdio: ['pipe', 'ignore', 'ignore'], detached: true },
  )
  child.unref()
  const stdin = child.stdin
  stdin?.on('error', () => {}) // a guard that died already: the sweep covers it
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve())
    child.once('error', () => resolve())
  })
  const say = (line: string) => {
    if (stdin && !stdin.destroyed && stdin.writable) stdin.write(`${line}\n`)
  }
  let finished = false
  return {
    pid: child.pid,
    watch(pid) {
      if (pid !== undefined) say(`pid ${pid}`)
    },
    unwatch(pid) {
      if (pid !== undefined) say(`unpid ${pid}`)
    },
    async done() {
      if (finished) return
      finished = true
      say('done')
      stdin?.end()
      await exited
    },
  }
}
