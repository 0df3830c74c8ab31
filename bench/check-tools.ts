/**
 * `pnpm bench` set-up check: the tools the benches compare against must be on the PATH. A
 * fresh machine lacks `age` (capsule-core's bench compares with it); say how to install it
 * instead of dying inside a bench with `spawnSync age-keygen ENOENT`. Never downloads.
 */
import { spawnSync } from 'node:child_process'

const TOOLS: { cmd: string; args: string[]; debian: string }[] = [
  { cmd: 'age', args: ['--version'], debian: 'age' },
  { cmd: 'age-keygen', args: ['--version'], debian: 'age' },
  { cmd: 'openssl', args: ['version'], debian: 'openssl' },
  { cmd: '/usr/bin/time', args: ['-f', '%M', 'true'], debian: 'time' },
]

const missing = TOOLS.filter((t) => spawnSync(t.cmd, t.args, { stdio: 'ignore' }).error)
if (missing.length > 0) {
  const pkgs = [...new Set(missing.map((t) => t.debian))].join(' ')
  process.stderr.write(
    `bench: missing ${missing.map((t) => t.cmd).join(', ')}: the benches compare against them.\n` +
      `  Install from Debian: sudo apt-get install -y ${pkgs}   (.ci/run installs it with the other Debian tools)\n`,
  )
  process.exit(1)
}
