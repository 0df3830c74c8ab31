import type { Log } from 'ethers'
import type { TypedContract } from './generated/bindings.ts'

type EventsOf<C> = C extends TypedContract<infer E> ? E : never

/**
 * Decodes the `name` events that `contract` emitted in `logs` (a receipt, or its logs).
 *
 * @example
 * ```ts
 * const receipt = await (await accessController.requestAccess(id, key, m, '0x')).wait()
 * const [granted] = parseEvents(accessController, receipt!, 'AccessGranted')
 * console.log(granted.grantId, granted.expiresAt)
 * ```
 */
export function parseEvents<C extends TypedContract<object>, N extends keyof EventsOf<C> & string>(
  contract: C,
  logs: readonly Log[] | { readonly logs: readonly Log[] },
  name: N,
): EventsOf<C>[N][] {
  const list = 'logs' in logs ? logs.logs : logs
  const target = String(contract.target).toLowerCase()
  const out: EventsOf<C>[N][] = []
  for (const log of list) {
    if (log.address.toLowerCase() !== target) continue
    const parsed = contract.interface.parseLog({ topics: [...log.topics], data: log.data })
    if (parsed?.name === name) out.push(parsed.args.toObject() as EventsOf<C>[N])
  }
  return out
}
