import { Interface } from 'ethers'
import { ContractRevertError } from './errors.ts'
import { accessControllerAbi, capsuleRegistryAbi, nodeRegistryAbi } from './generated/artifacts.ts'

let digicapErrors: Interface | undefined

function errorsInterface(): Interface {
  if (!digicapErrors) {
    const seen = new Set<string>()
    const fragments = [...accessControllerAbi, ...capsuleRegistryAbi, ...nodeRegistryAbi].filter(
      (f) => {
        if (f.type !== 'error') return false
        const key = `${f.name}(${f.inputs.map((i) => i.type).join(',')})`
        if (seen.has(key)) return false
        seen.add(key)
        return true
      },
    )
    digicapErrors = new Interface(fragments)
  }
  return digicapErrors
}

function findRevertData(err: unknown): string | undefined {
  let e: unknown = err
  for (let depth = 0; depth < 6 && e && typeof e === 'object'; depth++) {
    const o = e as {
      data?: unknown
      error?: { data?: unknown }
      info?: { error?: { data?: unknown } }
      cause?: unknown
    }
    for (const d of [o.data, o.error?.data, o.info?.error?.data]) {
      if (typeof d === 'string' && /^0x[0-9a-fA-F]*$/.test(d)) return d
      if (d && typeof d === 'object' && typeof (d as { data?: unknown }).data === 'string')
        return (d as { data: string }).data
    }
    e = o.cause ?? o.error
  }
  return undefined
}

/**
 * Turns whatever ethers threw for a reverted call into a {@link ContractRevertError} naming the
 * Digicap custom error and its arguments. Errors that are not reverts are returned unchanged.
 *
 * @example
 * ```ts
 * try { await accessController.requestAccess(id, key, m, '0x') }
 * catch (err) { const e = decodeRevert(err); if (e instanceof ContractRevertError) console.log(e.errorName, e.args) }
 * ```
 */
export function decodeRevert(err: unknown): ContractRevertError | unknown {
  if (err instanceof ContractRevertError) return err
  const code = (err as { code?: unknown } | null)?.code
  const data = findRevertData(err)
  if (code !== 'CALL_EXCEPTION' && data === undefined) return err
  if (data === undefined || data === '0x')
    return new ContractRevertError({ errorName: undefined, args: [], data }, { cause: err })
  try {
    const parsed = errorsInterface().parseError(data)
    if (parsed)
      return new ContractRevertError(
        { errorName: parsed.name, args: [...parsed.args], data },
        { details: { error: parsed.signature }, cause: err },
      )
  } catch {
    // not a Digicap error; fall through
  }
  const reason = (err as { reason?: unknown }).reason
  if (data.startsWith('0x08c379a0') && typeof reason === 'string')
    return new ContractRevertError({ errorName: 'Error', args: [reason], data }, { cause: err })
  if (data.startsWith('0x4e487b71'))
    return new ContractRevertError(
      { errorName: 'Panic', args: [BigInt(`0x${data.slice(10)}`)], data },
      { cause: err },
    )
  return new ContractRevertError({ errorName: undefined, args: [], data }, { cause: err })
}

/** Awaits `promise`; rethrows a revert as a {@link ContractRevertError}. */
export async function withRevertDecoding<T>(promise: Promise<T>): Promise<T> {
  try {
    return await promise
  } catch (err) {
    throw decodeRevert(err)
  }
}
