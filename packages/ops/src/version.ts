/** The version of the package a module belongs to (source or bundled, the nearest package.json named `name`). */
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export function packageVersion(moduleUrl: string, name: string): string {
  let dir = dirname(fileURLToPath(moduleUrl))
  for (;;) {
    const file = join(dir, 'package.json')
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string }
      if (pkg.name === name && typeof pkg.version === 'string') return pkg.version
    }
    const up = dirname(dir)
    if (up === dir) return 'unknown'
    dir = up
  }
}
