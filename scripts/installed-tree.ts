/**
 * The workspace as a user installs it: its packages packed (`pnpm pack`: `workspace:^` becomes a
 * version, only `files` ship), installed from the tarballs outside the workspace (offline, from
 * the pnpm store), and the installed tree read back (packages, native addons and their
 * architectures). Used by `check-installed-deps.ts` and the apps' packed-install test.
 */
import { execFileSync } from 'node:child_process'
import {
  closeSync,
  existsSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  writeFileSync,
} from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'

export const ROOT = resolve(import.meta.dirname, '..')

export interface WorkspacePackage {
  readonly name: string
  readonly dir: string
  readonly private: boolean
}

export function workspacePackages(): WorkspacePackage[] {
  const out: WorkspacePackage[] = []
  for (const group of ['packages', 'apps']) {
    for (const entry of readdirSync(join(ROOT, group))) {
      const file = join(ROOT, group, entry, 'package.json')
      if (!existsSync(file)) continue
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name: string; private?: boolean }
      out.push({ name: pkg.name, dir: dirname(file), private: pkg.private === true })
    }
  }
  return out
}

export function run(cmd: string, args: string[], cwd: string): string {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
}

/**
 * The workspace's overrides (react-native-webrtc dropped), so the install resolves from the
 * store offline. A user's install does not inherit them: ADR 0019 says what that costs.
 */
export function workspaceOverrides(): string {
  const yaml = readFileSync(join(ROOT, 'pnpm-workspace.yaml'), 'utf8')
  const block = /^overrides:\n((?:[ \t]+.*\n|\s*\n)*)/m.exec(yaml)
  return block?.[1] ?? ''
}

export interface Installed {
  readonly name: string
  readonly version: string
  readonly dir: string
}

/** Every package in a pnpm-installed tree, from `node_modules/.pnpm/<id>/node_modules/<name>`. */
export function installedPackages(projectDir: string): Installed[] {
  const store = join(projectDir, 'node_modules', '.pnpm')
  const out: Installed[] = []
  for (const id of readdirSync(store)) {
    if (id === 'node_modules' || id.startsWith('lock')) continue
    // "<name>@<version>[(peers)]", with "/" in a scoped name written "+".
    const at = id.indexOf('@', id.startsWith('@') ? 1 : 0)
    if (at <= 0) continue
    const name = id.slice(0, at).replace('+', '/')
    const dir = join(store, id, 'node_modules', name)
    if (!existsSync(join(dir, 'package.json'))) continue
    const version = (
      JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string }
    ).version
    out.push({ name, version, dir })
  }
  return out.sort((a, b) => a.name.localeCompare(b.name))
}

export function findNodeFiles(dir: string, out: string[] = []): string[] {
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry)
    const st = lstatSync(path)
    if (st.isSymbolicLink()) continue
    if (st.isDirectory()) {
      if (entry === 'node_modules') continue // nested packages are listed on their own
      findNodeFiles(path, out)
    } else if (entry.endsWith('.node')) out.push(path)
  }
  return out
}

/** Machine of a binary: ELF e_machine, or Mach-O / PE for the other platforms. */
export function binaryArch(file: string): string {
  const head = Buffer.alloc(20)
  const fd = openSync(file, 'r')
  try {
    readSync(fd, head, 0, 20, 0)
  } finally {
    closeSync(fd)
  }
  if (head.readUInt32BE(0) === 0x7f454c46) {
    const machine = head[5] === 1 ? head.readUInt16LE(18) : head.readUInt16BE(18)
    return machine === 183
      ? 'linux-arm64'
      : machine === 62
        ? 'linux-x64'
        : `linux-machine-${machine}`
  }
  const magic = head.readUInt32LE(0)
  if (magic === 0xfeedfacf || magic === 0xcafebabe || magic === 0xbebafeca) return 'darwin'
  if (head.readUInt16LE(0) === 0x5a4d) return 'win32'
  return 'unknown'
}

export interface AddonVerdict {
  readonly pkg: string
  readonly files: readonly { readonly path: string; readonly arch: string }[]
  readonly arm64: string | undefined
}

/**
 * A package's addons have a linux-arm64 build when one of its `.node` files is an aarch64 ELF
 * (prebuilds shipped in the package), or when it is a platform package (`foo-linux-x64-gnu`)
 * whose parent also offers a linux-arm64 sibling in its optionalDependencies.
 */
export function addonVerdicts(pkgs: readonly Installed[]): AddonVerdict[] {
  const verdicts: AddonVerdict[] = []
  for (const p of pkgs) {
    const files = findNodeFiles(p.dir).map((path) => ({
      path: relative(p.dir, path),
      arch: binaryArch(path),
    }))
    // Installed with --ignore-scripts: an addon compiled at install shows as its binding.gyp.
    if (files.length === 0 && existsSync(join(p.dir, 'binding.gyp')))
      files.push({ path: 'binding.gyp', arch: 'compiled at install' })
    if (files.length === 0) continue
    let arm64 = files.some((f) => f.arch === 'linux-arm64') ? 'prebuilt in the package' : undefined
    if (arm64 === undefined) {
      for (const parent of pkgs) {
        const manifest = JSON.parse(readFileSync(join(parent.dir, 'package.json'), 'utf8')) as {
          optionalDependencies?: Record<string, string>
        }
        const optional = Object.keys(manifest.optionalDependencies ?? {})
        if (!optional.includes(p.name)) continue
        const sibling = optional.find((n) => /linux-arm64/.test(n))
        if (sibling) arm64 = `${sibling} (optional dependency of ${parent.name})`
      }
    }
    verdicts.push({ pkg: `${p.name}@${p.version}`, files, arm64 })
  }
  return verdicts
}

/**
 * Packs every workspace package but the demo into `dir`; returns name → tarball.
 * @throws when a package has no dist/ (run `pnpm build` first) or packing fails.
 */
export function packWorkspace(dir: string): Map<string, string> {
  const byName = new Map<string, string>()
  for (const p of workspacePackages()) {
    if (p.name === '@digicap/demo') continue
    if (!existsSync(join(p.dir, 'dist')))
      throw new Error(`${p.name} has no dist/: run \`pnpm build\` first`)
    const before = new Set(readdirSync(dir))
    run('pnpm', ['pack', '--pack-destination', dir], p.dir)
    const made = readdirSync(dir).filter((f) => !before.has(f))
    const [tarball] = made
    if (made.length !== 1 || tarball === undefined)
      throw new Error(`pnpm pack of ${p.name} made ${made.length} files`)
    byName.set(p.name, join(dir, tarball))
  }
  return byName
}

/**
 * Installs `names` from their tarballs into the new project `dir` (production dependencies,
 * offline, scripts not run); inner `@digicap/*` dependencies resolve to the tarballs too.
 */
export function installFromTarballs(
  dir: string,
  names: readonly string[],
  byName: ReadonlyMap<string, string>,
): void {
  mkdirSync(dir, { recursive: true })
  const dependencies: Record<string, string> = {}
  for (const name of names) {
    const tarball = byName.get(name)
    if (!tarball) throw new Error(`${name} is not in the workspace`)
    dependencies[name] = `file:${tarball}`
  }
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({ name: 'installed-check', private: true, dependencies }),
  )
  const overrides = [...byName].map(([name, file]) => `  "${name}": "file:${file}"\n`).join('')
  writeFileSync(join(dir, 'pnpm-workspace.yaml'), `overrides:\n${overrides}${workspaceOverrides()}`)
  const { stdout } = { stdout: run('pnpm', ['store', 'path'], ROOT) }
  run(
    'pnpm',
    [
      'install',
      '--offline',
      '--prod',
      '--ignore-scripts',
      '--reporter=silent',
      '--store-dir',
      stdout.trim(),
    ],
    dir,
  )
}
