/**
 * `fields` without its `undefined` entries, typed as optional: a command hands its flags on as
 * an options object, and under `exactOptionalPropertyTypes` a key set to `undefined` is not a
 * key left out (the callee's default would not apply).
 *
 * @example
 * ```ts
 * await node.serve({ ...definedFields({ confirmations: flags.confirmations }), fastPath: true })
 * ```
 */
export function definedFields<T extends Record<string, unknown>>(
  fields: T,
): { [K in keyof T]?: Exclude<T[K], undefined> } {
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(fields)) if (value !== undefined) out[key] = value
  return out as { [K in keyof T]?: Exclude<T[K], undefined> }
}
