import { readFile } from 'node:fs/promises'
import { ConfigError, NotInitialisedError } from '../errors.ts'

/** A function that throws the app's "field missing or malformed" {@link ConfigError}. */
export type ConfigFieldError = (field: string, file: string) => never

/** The app's {@link ConfigFieldError}; the hint names its `init --force`. */
export function configFieldError(app: string): ConfigFieldError {
  return (field, file) => {
    throw new ConfigError(`Config field ${field} is missing or malformed`, {
      details: { field, file },
      hint: `Fix the file by hand or run \`${app} init --force\`.`,
    })
  }
}

/**
 * Reads and parses an app's config file.
 * @throws {NotInitialisedError} if there is no file (the app was never `init`ed here).
 * @throws {ConfigError} if it cannot be read or is not JSON.
 */
export async function readConfigJson(file: string, dataDir: string, app: string): Promise<unknown> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new NotInitialisedError(`No ${app} in this data folder`, {
        details: { dataDir },
        hint: `Run \`${app} init\` first, or pass --data-dir / DIGICAP_DATA_DIR.`,
      })
    }
    throw new ConfigError('Cannot read the config file', { cause, details: { file } })
  }
  try {
    return JSON.parse(text)
  } catch (cause) {
    throw new ConfigError('The config file is not JSON', { cause, details: { file } })
  }
}
