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
import { mkdirSync, mkdtempSync, realpathSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  addonVerdicts,
  installedPackages,
  installFromTarballs,
  packWorkspace,
} from './installed-tree.ts'

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

function main(): number {
  const keep = process.argv.includes('--keep')
  const list = process.argv.includes('--list')
  const work = mkdtempSync(join(tmpdir(), 'digicap-installed-'))
  const tarballs = join(work, 'tarballs')
  mkdirSync(tarballs)
  try {
    const byName = packWorkspace(tarballs)
    let failed = false
    for (const target of TARGETS) {
      const dir = join(work, target.name.replace('/', '+'))
      const started = Date.now()
      installFromTarballs(dir, [target.name], byName)
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
