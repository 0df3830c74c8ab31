import { createRequire } from 'node:module'
import { PolicyCompileError } from '../errors.ts'

/** The solc release every Digicap artifact is built with (the `solc` npm package, pinned). */
export const SOLC_VERSION = '0.8.37+commit.f401782d.Emscripten.clang'

/** The npm version of `solc` that is {@link SOLC_VERSION} (the optional peer to install). */
const SOLC_NPM_VERSION = SOLC_VERSION.slice(0, SOLC_VERSION.indexOf('+'))

/** Compiler settings for every Digicap contract and generated policy. Changing them changes bytecode. */
export const COMPILER_SETTINGS = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: 'cancun',
  metadata: { bytecodeHash: 'ipfs' },
} as const

/** One compiled contract from solc's standard JSON output. */
export interface CompiledContract {
  readonly abi: readonly Record<string, unknown>[]
  /** Creation bytecode, 0x-prefixed. */
  readonly bytecode: `0x${string}`
  /** Runtime bytecode, 0x-prefixed. */
  readonly deployedBytecode: `0x${string}`
  /** solc's metadata JSON (compiler version, settings, source hashes): enough to reproduce the build. */
  readonly metadata: string
  /** Byte ranges of immutables in the runtime bytecode (zero here, set by the constructor on chain). */
  readonly immutableReferences: readonly { readonly start: number; readonly length: number }[]
}

/** Compiler output: `contracts[sourceName][contractName]`. */
export type CompileOutput = Record<string, Record<string, CompiledContract>>

interface SolcLike {
  version(): string
  compile(input: string): string
}

let solcInstance: SolcLike | undefined

function loadSolc(): SolcLike {
  if (solcInstance === undefined) {
    // solc is CommonJS and ~10 MB of emscripten: load it only when something is compiled.
    // It is an optional peer (ADR 0019): executors and receivers never install it.
    const require = createRequire(import.meta.url)
    let solc: SolcLike
    try {
      solc = require('solc') as SolcLike
    } catch (cause) {
      if ((cause as { code?: string }).code !== 'MODULE_NOT_FOUND') throw cause
      throw new PolicyCompileError('solc is not installed', {
        details: { missing: 'solc', expected: SOLC_VERSION },
        hint: `Install it where policies are compiled: pnpm add solc@${SOLC_NPM_VERSION}`,
        cause,
      })
    }
    const version = solc.version()
    if (version !== SOLC_VERSION) {
      throw new PolicyCompileError('Installed solc is not the pinned version', {
        details: { expected: SOLC_VERSION, found: version },
        hint: `Install the exact version @digicap/contracts/compiler is built for: solc@${SOLC_NPM_VERSION}.`,
      })
    }
    solcInstance = solc
  }
  return solcInstance
}

interface SolcMessage {
  severity: 'error' | 'warning' | 'info'
  formattedMessage?: string
  message: string
  type: string
}

/**
 * Compiles Solidity sources in process with the pinned solc (no download, no network).
 *
 * @param sources Map of source unit name to Solidity text (imports resolve against these names).
 * @throws {PolicyCompileError} when solc reports an error or a warning (warnings are errors here:
 *   generated and shipped sources must compile clean).
 */
export function compileSolidity(sources: Readonly<Record<string, string>>): CompileOutput {
  const solc = loadSolc()
  const input = {
    language: 'Solidity',
    sources: Object.fromEntries(
      Object.keys(sources)
        .sort()
        .map((name) => [name, { content: sources[name] }]),
    ),
    settings: {
      ...COMPILER_SETTINGS,
      outputSelection: {
        '*': {
          '*': [
            'abi',
            'evm.bytecode.object',
            'evm.deployedBytecode.object',
            'evm.deployedBytecode.immutableReferences',
            'metadata',
          ],
        },
      },
    },
  }
  let output: {
    errors?: SolcMessage[]
    contracts?: Record<
      string,
      Record<
        string,
        {
          abi: Record<string, unknown>[]
          metadata: string
          evm: {
            bytecode: { object: string }
            deployedBytecode: {
              object: string
              immutableReferences?: Record<string, { start: number; length: number }[]>
            }
          }
        }
      >
    >
  }
  try {
    output = JSON.parse(solc.compile(JSON.stringify(input)))
  } catch (cause) {
    throw new PolicyCompileError('solc failed to run', { cause })
  }
  const problems = (output.errors ?? []).filter((e) => e.severity !== 'info')
  if (problems.length > 0) {
    const messages = problems.map((e) => (e.formattedMessage ?? e.message).trim())
    throw new PolicyCompileError(`solc reported ${problems.length} problem(s)`, {
      details: { errors: messages },
      hint: messages[0],
    })
  }
  const result: CompileOutput = {}
  for (const [sourceName, contracts] of Object.entries(output.contracts ?? {})) {
    const out: Record<string, CompiledContract> = {}
    for (const [name, c] of Object.entries(contracts)) {
      out[name] = {
        abi: c.abi,
        bytecode: `0x${c.evm.bytecode.object}`,
        deployedBytecode: `0x${c.evm.deployedBytecode.object}`,
        metadata: c.metadata,
        immutableReferences: Object.values(c.evm.deployedBytecode.immutableReferences ?? {})
          .flat()
          .sort((a, b) => a.start - b.start),
      }
    }
    result[sourceName] = out
  }
  return result
}
