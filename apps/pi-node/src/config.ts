/**
 * pi-node's data folder. The config inside it (fields, environment, checks) is the owner
 * node's: `loadOwnerNodeConfig` of `@digicap/owner/node`.
 */
import { homedir } from 'node:os'
import { join, resolve } from 'node:path'

/** The data folder: flag, then `DIGICAP_DATA_DIR`, then `~/.digicap/pi-node`. */
export function resolveDataDir(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  return resolve(flag ?? env.DIGICAP_DATA_DIR ?? join(homedir(), '.digicap', 'pi-node'))
}

/** The data folder's config with the environment: the owner node's reader, loaded on first use. */
export async function loadConfig(dataDir: string, env: NodeJS.ProcessEnv) {
  const { loadOwnerNodeConfig } = await import('@digicap/owner/node/light')
  return loadOwnerNodeConfig(dataDir, env)
}
