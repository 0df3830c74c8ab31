/**
 * What a user really installs: packs the workspace packages (`pnpm pack`, so `workspace:^`
 * becomes a version and only `files` ship), installs each target from the tarballs in a temp
 * directory outside the workspace (offline, from the pnpm store), lists the installed tree and
 * fails when
 * - a package an executor or a receiver installs brings solc or an anvil binary (those belong to
 *   the owner's policy compiler and to tests: ADR 0019), or
 * - a native addon (`.node`) in an installed executor-node or pi-node has no linux-arm64 build
 *   (the nodes run on a Raspberry Pi).
 *
 * Run after `pnpm build`: `pnpm check:installed` (`node scripts/check-installed-deps.ts
 * [--list] [--keep]`: `--list` prints every installed package, `--keep` keeps the temp dir). Exit code 1 on a
 * violation, 2 when packing or installing failed.
 */
import { execFileSync } from 'node:child_process'
import {
  closeSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'

const ROOT = resolve(import.meta.dirname, '..')

/** Packages the solc/anvil rule forbids, as name patterns. */
const SOLC = /^solc$/
const ANVIL = /^@foundry-rs\/anvil(-|$)/

interface Target {
  /** Workspace package to install as a user would. */
  readonly name: string
  /** Who installs it, for the report. */
  readonly role: string
  /** Packages that must not be in its installed tree. */
  readonly forbidden: readonly RegExp[]
  /** Check every native addon for a linux-arm64 build. */
  readonly nativeAddons: boolean
  /** ES module code run from the installed package's directory, and the output it must print. */
  readonly probes?: readonly {
    readonly code: string
    readonly expect: string
    readonly what: string
  }[]
}

/** The compiler entry without solc: a typed error that names what to install. */
const NO_SOLC = {
  what: 'the compiler entry without solc throws PolicyCompileError naming solc',
  code: `const { compilePolicy } = await import('@digicap/contracts/compiler')
try { compilePolicy('contract X {}'); console.log('compiled') } catch (e) { console.log(e.code, e.details?.missing) }`,
  expect: 'POLICY_COMPILE solc',
}
/** The testing entry without anvil: a typed error. */
const NO_ANVIL = {
  what: 'the testing entry without anvil throws AnvilError',
  code: `const { resolveAnvilBinary } = await import('@digicap/contracts/testing')
try { console.log('found', resolveAnvilBinary()) } catch (e) { console.log(e.code) }`,
  expect: 'ANVIL',
}
/** The owner's side compiles policies from its installed tree. */
const COMPILES = {
  what: 'compiles a generated policy with its own solc',
  code: `const { generatePolicySource, maxRuns } = await import('@digicap/contracts')
const { compilePolicy } = await import('@digicap/contracts/compiler')
console.log(compilePolicy(generatePolicySource(maxRuns(1))).bytecode.length > 2 ? 'compiled' : 'empty')`,
  expect: 'compiled',
}

const TARGETS: readonly Target[] = [
  {
    name: '@digicap/executor-node',
    role: 'executor node',
    forbidden: [SOLC, ANVIL],
    nativeAddons: true,
  },
  // The owner's node compiles policies: solc is its business, anvil is not.
  {
    name: '@digicap/pi-node',
    role: 'owner node',
    forbidden: [ANVIL],
    nativeAddons: true,
    probes: [COMPILES],
  },
  {
    name: '@digicap/executor',
    role: 'executor and result receiver library',
    forbidden: [SOLC, ANVIL],
    nativeAddons: false,
    probes: [NO_SOLC, NO_ANVIL],
  },
  // Third parties' face: asking for runs and receiving results needs no compiler, no chain binary.
  {
    name: '@digicap/sdk',
    role: 'SDK (requester and receiver)',
    forbidden: [SOLC, ANVIL],
    nativeAddons: false,
  },
  // The owner's pipeline deploys policies: solc is its own dependency (an optional peer of contracts).
  {
    name: '@digicap/owner',
    role: 'owner pipeline library',
    forbidden: [ANVIL],
    nativeAddons: false,
    probes: [COMPILES],
  },
  {
    name: '@digicap/keyguard',
    role: 'keyguard library',
    forbidden: [SOLC, ANVIL],
    nativeAddons: false,
  },
  {
    name: '@digicap/contracts',
    role: 'chain bindings',
    forbidden: [SOLC, ANVIL],
    nativeAddons: false,
  },
]

interface WorkspacePackage {
  readonly name: string
  readonly dir: string
  readonly private: boolean
}

function workspacePackages(): WorkspacePackage[] {
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

function run(cmd: string, args: string[], cwd: string): string {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
}

/**
 * The workspace's overrides (react-native-webrtc dropped), so the install resolves from the
 * store offline. A user's install does not inherit them: ADR 0019 says what that costs.
 */
function workspaceOverrides(): string {
  const yaml = readFileSync(join(ROOT, 'pnpm-workspace.yaml'), 'utf8')
  const block = /^overrides:\n((?:[ \t]+.*\n|\s*\n)*)/m.exec(yaml)
  return block?.[1] ?? ''
}

interface Installed {
  readonly name: string
  readonly version: string
  readonly dir: string
}

/** Every package in a pnpm-installed tree, from `node_modules/.pnpm/<id>/node_modules/<name>`. */
function installedPackages(projectDir: string): Installed[] {
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

function findNodeFiles(dir: string, out: string[] = []): string[] {
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
function binaryArch(file: string): string {
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

interface AddonVerdict {
  readonly pkg: string
  readonly files: readonly { readonly path: string; readonly arch: string }[]
  readonly arm64: string | undefined
}

/**
 * A package's addons have a linux-arm64 build when one of its `.node` files is an aarch64 ELF
 * (prebuilds shipped in the package), or when it is a platform package (`foo-linux-x64-gnu`)
 * whose parent also offers a linux-arm64 sibling in its optionalDependencies.
 */
function addonVerdicts(pkgs: readonly Installed[]): AddonVerdict[] {
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

function main(): number {
  const keep = process.argv.includes('--keep')
  const list = process.argv.includes('--list')
  const work = mkdtempSync(join(tmpdir(), 'digicap-installed-'))
  const tarballs = join(work, 'tarballs')
  mkdirSync(tarballs)
  const byName = new Map<string, string>()
  try {
    for (const p of workspacePackages()) {
      if (p.name === '@digicap/demo') continue
      if (!existsSync(join(p.dir, 'dist'))) {
        console.error(`${p.name} has no dist/: run \`pnpm build\` first`)
        return 2
      }
      const before = new Set(readdirSync(tarballs))
      run('pnpm', ['pack', '--pack-destination', tarballs], p.dir)
      const made = readdirSync(tarballs).filter((f) => !before.has(f))
      const [tarball] = made
      if (made.length !== 1 || tarball === undefined)
        throw new Error(`pnpm pack of ${p.name} made ${made.length} files`)
      byName.set(p.name, join(tarballs, tarball))
    }
    const overrides = [...byName].map(([name, file]) => `  "${name}": "file:${file}"\n`).join('')
    let failed = false
    for (const target of TARGETS) {
      const tarball = byName.get(target.name)
      if (!tarball) throw new Error(`${target.name} is not in the workspace`)
      const dir = join(work, target.name.replace('/', '+'))
      mkdirSync(dir)
      writeFileSync(
        join(dir, 'package.json'),
        JSON.stringify({
          name: 'installed-check',
          private: true,
          dependencies: { [target.name]: `file:${tarball}` },
        }),
      )
      writeFileSync(
        join(dir, 'pnpm-workspace.yaml'),
        `overrides:\n${overrides}${workspaceOverrides()}`,
      )
      const started = Date.now()
      run('pnpm', ['install', '--offline', '--prod', '--ignore-scripts', '--reporter=silent'], dir)
      const pkgs = installedPackages(dir)
      console.log(
        `\n${target.name} (${target.role}): ${pkgs.length} packages installed in ${Date.now() - started} ms`,
      )
      if (list) for (const p of pkgs) console.log(`  ${p.name}@${p.version}`)
      const bad = pkgs.filter((p) => target.forbidden.some((re) => re.test(p.name)))
      for (const p of bad) {
        console.log(`  FORBIDDEN ${p.name}@${p.version}`)
        failed = true
      }
      if (bad.length === 0) console.log(`  none of ${target.forbidden.map(String).join(', ')}`)
      for (const probe of target.probes ?? []) {
        const home = join(dir, 'node_modules', ...target.name.split('/'))
        const env = { ...process.env }
        delete env.ANVIL_PATH
        const out = execFileSync(process.execPath, ['--input-type=module', '-e', probe.code], {
          cwd: realpathSync(home),
          encoding: 'utf8',
          env,
        }).trim()
        const ok = out === probe.expect
        console.log(`  ${ok ? 'ok' : 'FAILED'}: ${probe.what}${ok ? '' : ` (printed "${out}")`}`)
        if (!ok) failed = true
      }
      if (target.nativeAddons) {
        const verdicts = addonVerdicts(pkgs)
        if (verdicts.length === 0) console.log('  native addons: none')
        for (const v of verdicts) {
          const where = v.files.map((f) => `${f.path} [${f.arch}]`).join(', ')
          console.log(`  native addon ${v.pkg}: ${where}; linux-arm64: ${v.arm64 ?? 'MISSING'}`)
          if (v.arm64 === undefined) failed = true
        }
      }
    }
    console.log(failed ? '\nFAIL' : '\nOK')
    return failed ? 1 : 0
  } catch (err) {
    const e = err as { message: string; stderr?: string }
    console.error(e.message, e.stderr ?? '')
    return 2
  } finally {
    if (keep) console.log(`kept ${work}`)
    else rmSync(work, { recursive: true, force: true })
  }
}

process.exitCode = main()
