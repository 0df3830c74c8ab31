/**
 * An app's config declared once: each field names its type, default, environment variable,
 * file key and flag; `resolve` takes the value from the flag, else the environment, else the
 * file, else the default, and checks it. A bad value is a {@link ConfigError} that names the
 * field and where the value came from.
 */
import { ConfigError } from '../errors.ts'
import { type ConfigFieldError, configFieldError, readConfigJson } from './file.ts'

/** What a field holds. `list` is an array of strings (a comma list in the environment). */
export type ConfigFieldType = 'string' | 'number' | 'boolean' | 'list'
export type ConfigValue = string | number | boolean | string[]

/** One field. Its key in the `fields` record is its (dotted) key in the file: `keyguard.confirmations`. */
export interface ConfigField {
  type: ConfigFieldType
  /** Environment variable that overrides the file (`''` counts as unset). */
  env?: string
  /** Flag (without `--`) that overrides the environment; see {@link ConfigSources.flags}. */
  flag?: string
  /** Used when no source gives a value. */
  default?: ConfigValue
  /** No value anywhere is fine (the key stays absent). Default: the field is required. */
  optional?: boolean
  /** Numbers: whole numbers at least this (default 0). */
  min?: number
  /** Strings, and each item of a list, must match. */
  pattern?: RegExp
  /** The only values allowed. */
  choices?: readonly (string | number)[]
}

export type ConfigFields = Readonly<Record<string, ConfigField>>

/** Where values come from, highest precedence first: flags, env, file. */
export interface ConfigSources {
  /**
   * Values by flag name, as the command shell parsed them; `undefined` is "not given", and so
   * is `false` for a boolean field (a switch that is off).
   */
  flags?: Readonly<Record<string, unknown>>
  env?: NodeJS.ProcessEnv
  /** The parsed config file; keys no field declares are kept as they are. */
  file?: unknown
  /** The file's path, for errors. */
  fileName?: string
}

export interface ConfigSchema<T> {
  readonly app: string
  readonly fields: ConfigFields
  /** The config from `sources`. @throws {ConfigError} naming the first bad field. */
  resolve(sources: ConfigSources): T
  /**
   * Reads `file` (see `readConfigJson`), then {@link ConfigSchema.resolve}s it with `env` and `flags`.
   * @throws {NotInitialisedError} if there is no file. @throws {ConfigError}
   */
  load(
    file: string,
    dataDir: string,
    sources?: Omit<ConfigSources, 'file' | 'fileName'>,
  ): Promise<T>
}

/** The fields every Digicap node config shares: version 1, data folder, chain and contracts. */
export const CHAIN_CONFIG_FIELDS = {
  version: { type: 'number', choices: [1] },
  dataDir: { type: 'string' },
  rpcUrl: { type: 'string', env: 'DIGICAP_RPC_URL', pattern: /^(https?|wss?):\/\// },
  chainId: { type: 'number', min: 1 },
  'contracts.capsuleRegistry': { type: 'string', pattern: /^0x[0-9a-fA-F]{40}$/ },
  'contracts.nodeRegistry': { type: 'string', pattern: /^0x[0-9a-fA-F]{40}$/ },
  'contracts.accessController': { type: 'string', pattern: /^0x[0-9a-fA-F]{40}$/ },
} as const satisfies ConfigFields

type Source = { kind: 'flag' | 'env' | 'file' | 'default'; name: string }
const MALFORMED = Symbol('malformed')

/** The value at a dotted key; {@link MALFORMED} with the key of a parent that is not an object. */
export function valueAt(root: unknown, key: string): unknown {
  let v = root
  for (const part of key.split('.')) {
    if (v === undefined) return undefined
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return MALFORMED
    v = (v as Record<string, unknown>)[part]
  }
  return v
}

function setAt(root: Record<string, unknown>, key: string, value: unknown): void {
  const parts = key.split('.')
  let o = root
  for (const part of parts.slice(0, -1)) {
    o[part] = { ...((o[part] as Record<string, unknown> | undefined) ?? {}) }
    o = o[part] as Record<string, unknown>
  }
  o[parts.at(-1) as string] = value
}

/** Whether `v` is a well-formed value of `field` (type, min, pattern, choices). */
export function fieldAccepts(field: ConfigField, v: unknown): boolean {
  const typed =
    field.type === 'list'
      ? Array.isArray(v) && v.every((x) => typeof x === 'string')
      : field.type === 'number'
        ? typeof v === 'number' && Number.isSafeInteger(v) && v >= (field.min ?? 0)
        : typeof v === field.type
  if (!typed) return false
  const texts = field.type === 'list' ? (v as string[]) : typeof v === 'string' ? [v] : []
  if (field.pattern && texts.some((t) => !(field.pattern as RegExp).test(t))) return false
  return !field.choices || field.choices.includes(v as string | number)
}

/** An environment variable's text as a value of `field` (undefined when it is not one). */
function fromEnv(field: ConfigField, text: string): unknown {
  if (field.type === 'number') return /^\d+$/.test(text) ? Number(text) : undefined
  if (field.type === 'boolean') return { 1: true, true: true, 0: false, false: false }[text]
  if (field.type === 'list')
    return text
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.length > 0)
  return text
}

function malformed(app: string, field: string, source: Source, value: unknown): never {
  const shown = typeof value === 'string' ? value.slice(0, 100) : value
  if (source.kind === 'file') configFieldError(app)(field, source.name)
  const from = source.kind === 'flag' ? `--${source.name}` : source.name
  throw new ConfigError(`${from} is not a valid ${field}`, {
    details: { field, [source.kind]: source.name, value: shown },
    hint: source.kind === 'env' ? `Fix or unset ${source.name}.` : `Fix ${from}.`,
  })
}

/** The first source that gives `field` a value, highest precedence first. */
function pick(
  key: string,
  field: ConfigField,
  sources: ConfigSources,
): { value: unknown; source: Source } | undefined {
  const flagged = field.flag === undefined ? undefined : sources.flags?.[field.flag]
  if (flagged !== undefined && !(field.type === 'boolean' && flagged === false))
    return { value: flagged, source: { kind: 'flag', name: field.flag as string } }
  const text = field.env === undefined ? undefined : sources.env?.[field.env]
  if (text !== undefined && text !== '')
    return { value: fromEnv(field, text), source: { kind: 'env', name: field.env as string } }
  const inFile = valueAt(sources.file, key)
  const file: Source = { kind: 'file', name: sources.fileName ?? '(config)' }
  if (inFile !== undefined) return { value: inFile, source: file }
  if (field.default !== undefined)
    return { value: field.default, source: { kind: 'default', name: key } }
  return field.optional ? undefined : { value: undefined, source: file }
}

/**
 * Declares an app's config. `T` is the shape `resolve` returns (the file's shape, with the
 * declared fields checked and overridden); keys no field declares pass through, for the app to
 * check (e.g. a tagged union).
 *
 * @example
 * ```ts
 * const schema = defineConfig<{ rpcUrl: string; listen: string[] }>('toy-node', {
 *   rpcUrl: { type: 'string', env: 'TOY_RPC_URL', flag: 'rpc-url', default: 'http://127.0.0.1:8545' },
 *   listen: { type: 'list', env: 'TOY_LISTEN', default: ['/ip4/0.0.0.0/tcp/4001'] },
 * })
 * const config = schema.resolve({ flags: { 'rpc-url': undefined }, env: process.env, file: {} })
 * ```
 */
export function defineConfig<T>(app: string, fields: ConfigFields): ConfigSchema<T> {
  const resolve = (sources: ConfigSources): T => {
    const { file } = sources
    if (file !== undefined && (typeof file !== 'object' || file === null || Array.isArray(file)))
      malformed(
        app,
        Object.keys(fields)[0] ?? '(config)',
        { kind: 'file', name: sources.fileName ?? '(config)' },
        file,
      )
    const out = structuredClone((file ?? {}) as Record<string, unknown>)
    for (const [key, field] of Object.entries(fields)) {
      const got = pick(key, field, sources)
      if (got === undefined) continue
      if (got.value === MALFORMED || !fieldAccepts(field, got.value)) {
        const parent = got.value === MALFORMED ? key.split('.').slice(0, -1).join('.') : key
        malformed(app, parent, got.source, got.value)
      }
      setAt(out, key, got.value)
    }
    return out as T
  }
  return {
    app,
    fields,
    resolve,
    async load(file, dataDir, sources = {}) {
      const raw = await readConfigJson(file, dataDir, app)
      return resolve({ ...sources, file: raw, fileName: file })
    },
  }
}

/**
 * Checks the {@link CHAIN_CONFIG_FIELDS} of a parsed file, calling `bad` with the first
 * malformed one (the form apps used before {@link defineConfig}).
 */
export function checkChainConfigFields(raw: unknown, file: string, bad: ConfigFieldError): void {
  for (const [key, field] of Object.entries(CHAIN_CONFIG_FIELDS)) {
    const v = valueAt(raw ?? undefined, key)
    if (v === MALFORMED || !fieldAccepts(field, v)) bad(key, file)
  }
}
