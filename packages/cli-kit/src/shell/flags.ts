/** Short declarers of flags, one line each in a command's declaration (types kept for handlers). */
import type { FlagSpec } from './types.ts'

/** What a declarer takes besides the placeholder and the help. */
export type FlagExtras = Omit<FlagSpec, 'type' | 'multiple' | 'value' | 'help'>

/** A flag that takes one value: `--rpc-url <url>`. */
export function valueFlag<
  const V extends string,
  const O extends FlagExtras = Record<never, never>,
>(value: V, help: string, more?: O): { type: 'string'; value: V; help: string } & O {
  return { type: 'string', value, help, ...(more as O) }
}

/** A repeatable flag: `--listen <multiaddr>`, every value in order. */
export function listFlag<const V extends string, const O extends FlagExtras = Record<never, never>>(
  value: V,
  help: string,
  more?: O,
): { type: 'string'; multiple: true; value: V; help: string } & O {
  return { type: 'string', multiple: true, value, help, ...(more as O) }
}

/** A switch: `--force`, `false` when absent. */
export function switchFlag<
  const O extends Pick<FlagExtras, 'short' | 'group'> = Record<never, never>,
>(help: string, more?: O): { type: 'boolean'; help: string } & O {
  return { type: 'boolean', help, ...(more as O) }
}
