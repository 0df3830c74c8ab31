/** The data folder (light: `--help` loads it). */
import { homedir } from 'node:os'
import { join, resolve } from 'node:path'

/** The data folder: flag, then `DIGICAP_DATA_DIR`, then `~/.digicap/executor-node`. */
export const resolveDataDir = (flag: string | undefined, env: NodeJS.ProcessEnv): string =>
  resolve(flag ?? env.DIGICAP_DATA_DIR ?? join(homedir(), '.digicap', 'executor-node'))
