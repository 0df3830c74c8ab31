/**
 * Named deployments that ship with the package. One file per network; a third party adds its
 * own at run time (`@digicap/sdk`'s `registerNetwork`), not here.
 */
import { LOCAL_NETWORK } from './local.ts'
import type { DigicapNetwork } from './types.ts'

export { LOCAL_DEPLOYER, LOCAL_NETWORK } from './local.ts'
export type { DigicapNetwork } from './types.ts'

/** Every deployment this version of the package knows, by name. */
export const NETWORKS: Readonly<Record<string, DigicapNetwork>> = Object.freeze({
  local: LOCAL_NETWORK,
})
