/**
 * The data folder must be this user's alone (ADR 0089). Its files are 0600, but config.json
 * names the chain RPC the keyguard believes and tpm2-key.json the PCR approval: in a folder
 * another user can write into (or under a parent he can write into), he cannot read them but
 * can rename files of his own over them, or the folder itself. So, as ssh's StrictModes: the
 * folder and every parent up to `/` must be owned by this user or root and not writable by
 * group or others, except a parent with the sticky bit (`/tmp`), where others cannot rename
 * what is ours. In a folder others may enter, the trusted files themselves must not be
 * writable by them either (ssh checks authorized_keys so too).
 */
import { chmod, mkdir, realpath, stat } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { ConfigError } from '@digicap/cli-kit'

const GROUP_OR_OTHER_WRITE = 0o022
const GROUP_OR_OTHER_SEARCH = 0o011
const STICKY = 0o1000
/**
 * The files whose content the node trusts (config.json, the owner file, the TPM key record):
 * in a folder others may enter (0755, systemd's StateDirectory default), one of them left
 * writable by others is rewritten in place, no rename needed.
 */
const TRUSTED_FILES = ['config.json', 'owner.json', 'tpm2-key.json']

function unsafe(reason: 'data-dir-writable' | 'data-dir-owner', path: string, dataDir: string) {
  const writable = reason === 'data-dir-writable'
  return new ConfigError(
    writable
      ? 'The data folder can be changed by other users'
      : 'The data folder belongs to another user',
    {
      details: { reason, path, dataDir },
      hint: writable
        ? `Another local user could replace config.json or the TPM key record. Run: chmod go-w ${path} (the data folder itself: chmod 700).`
        : `Run pi-node as the folder's owner, or chown -R the folder (${path}) to this user.`,
    },
  )
}

/**
 * Checks the folder and its parents (a missing folder passes: there is nothing to protect yet)
 * and, when others may enter the folder, the files the node trusts in it.
 * @throws {ConfigError} `data-dir-writable` or `data-dir-owner`, `details.path` the culprit.
 */
export async function checkDataDir(dataDir: string): Promise<void> {
  let path: string
  try {
    path = await realpath(dataDir)
  } catch (err) {
    // Missing, or under a file: nothing to protect; the config loader says what is wrong.
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') return
    throw err
  }
  const folder = await stat(path)
  if (!folder.isDirectory()) return
  const uid = process.getuid?.()
  for (let at = path, first = true; ; at = dirname(at), first = false) {
    const info = await stat(at)
    if (uid !== undefined && info.uid !== uid && info.uid !== 0) {
      throw unsafe('data-dir-owner', at, dataDir)
    }
    const sticky = !first && (info.mode & STICKY) !== 0
    if ((info.mode & GROUP_OR_OTHER_WRITE) !== 0 && !sticky) {
      throw unsafe('data-dir-writable', at, dataDir)
    }
    if (dirname(at) === at) break
  }
  if ((folder.mode & GROUP_OR_OTHER_SEARCH) === 0) return
  for (const name of TRUSTED_FILES) {
    const file = join(path, name)
    const info = await stat(file).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined
      throw err
    })
    if (info === undefined) continue
    if (uid !== undefined && info.uid !== uid && info.uid !== 0) {
      throw unsafe('data-dir-owner', file, dataDir)
    }
    if ((info.mode & GROUP_OR_OTHER_WRITE) !== 0) throw unsafe('data-dir-writable', file, dataDir)
  }
}

/**
 * What `init` does to the folder before writing to it: creates it 0700, tightens a folder it
 * finds to 0700 (it is about to hold the node's secrets), then checks it and its parents.
 * @throws {ConfigError} as {@link checkDataDir}.
 */
export async function prepareDataDir(dataDir: string): Promise<void> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 })
  const info = await stat(dataDir)
  if (info.uid === process.getuid?.() && (info.mode & 0o777) !== 0o700) await chmod(dataDir, 0o700)
  await checkDataDir(dataDir)
}
