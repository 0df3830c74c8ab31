/**
 * A verifier's signed-vote record in its data folder (slashing protection, ADR 0093):
 * `<dataDir>/signed-votes.json`, beside the key's `secrets.json`. `@digicap/committee`'s
 * {@link SignedVoteBook} decides; this file only keeps its snapshot.
 *
 * One JSON document, rewritten whole on each change by write-temp, fsync, rename, fsync of the
 * folder (`writeFileAtomic`): a kill -9 or a power cut leaves the old record or the new one,
 * never a torn one. So anything that does not read as a whole record this version wrote (cut,
 * garbled, its SHA-256 off, another version) is damage, not a crash: the verifier refuses to
 * sign (`SignedVoteError` `corrupt`) instead of starting empty. The record is small: slots of
 * open rounds only (a job's are dropped once it settles or times out on chain), at most
 * `maxEntries` of them, and the last `maxClosed` closed round ids.
 */
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import type { Address } from '@digicap/capsule-core'
import {
  SignedVoteBook,
  type SignedVoteBookOptions,
  type SignedVoteEntry,
  SignedVoteError,
  type SignedVoteSnapshot,
} from '@digicap/committee'

/** The file's format version (a change to the document bumps it). */
export const SIGNED_VOTES_VERSION = 1

/** Options of {@link fileSignedVotes}. */
export interface FileSignedVotesInit extends Omit<SignedVoteBookOptions, 'persist'> {
  /** The record's file (`<dataDir>/signed-votes.json`). */
  readonly path: string
  /** The verifier's address: the record is this key's. */
  readonly signer: Address
  /**
   * Create an empty record when there is none. Only where no vote was ever signed with this key
   * from this folder (`executor-node init`, or an operator who knows it); otherwise a missing
   * record is `SignedVoteError` `missing`. Default false.
   */
  readonly create?: boolean
}

/** Components of {@link fileSignedVotes}. */
export interface FileSignedVotesComponents {
  /** Writes `text` to `path` atomically (temp file, fsync, rename, fsync the folder). */
  writeFileAtomic(path: string, text: string): Promise<void>
}

interface Body {
  version: number
  signer: string
  entries: SignedVoteEntry[]
  closed: string[]
}

const HEX = /^0x[0-9a-f]*$/
const checksum = (body: Body): string =>
  createHash('sha256').update(JSON.stringify(body)).digest('hex')

/** The document of a snapshot: its body and the body's SHA-256. */
export function encodeSignedVotes(s: SignedVoteSnapshot): string {
  const body: Body = {
    version: SIGNED_VOTES_VERSION,
    signer: s.signer.toLowerCase(),
    entries: s.entries.map((e) => ({
      slot: e.slot,
      round: e.round,
      digest: e.digest,
      ...(e.signature === undefined ? {} : { signature: e.signature }),
    })),
    closed: [...s.closed],
  }
  return `${JSON.stringify({ ...body, sha256: checksum(body) })}\n`
}

/**
 * Reads a document {@link encodeSignedVotes} wrote.
 * @throws {SignedVoteError} `corrupt` for anything else.
 */
export function decodeSignedVotes(text: string, path: string): SignedVoteSnapshot {
  const corrupt = (why: string) =>
    new SignedVoteError('corrupt', 'The signed-vote record is damaged', {
      details: { path, why },
      hint: 'A crash never leaves it so (it is replaced whole): the file was cut or altered. Restore it from a backup; if none, wait until every job this key served has settled or timed out on chain, then move the file aside and start the verifier with a new record.',
    })
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch {
    throw corrupt('not JSON (cut or garbled)')
  }
  if (typeof doc !== 'object' || doc === null) throw corrupt('not a record')
  const { sha256, ...rest } = doc as Body & { sha256?: unknown }
  if (rest.version !== SIGNED_VOTES_VERSION) throw corrupt(`version ${String(rest.version)}`)
  const entryHolds = (e: unknown): e is SignedVoteEntry => {
    const x = e as Record<string, unknown>
    return (
      typeof x === 'object' &&
      x !== null &&
      typeof x.slot === 'string' &&
      typeof x.round === 'string' &&
      HEX.test(x.round) &&
      typeof x.digest === 'string' &&
      HEX.test(x.digest) &&
      x.digest.length === 66 &&
      (x.signature === undefined ||
        (typeof x.signature === 'string' && HEX.test(x.signature) && x.signature.length === 132))
    )
  }
  if (
    typeof rest.signer !== 'string' ||
    !/^0x[0-9a-f]{40}$/.test(rest.signer) ||
    !Array.isArray(rest.entries) ||
    !rest.entries.every(entryHolds) ||
    !Array.isArray(rest.closed) ||
    !rest.closed.every((r) => typeof r === 'string' && HEX.test(r))
  ) {
    throw corrupt('a field of the wrong shape')
  }
  const body: Body = {
    version: rest.version,
    signer: rest.signer,
    entries: rest.entries,
    closed: rest.closed,
  }
  if (sha256 !== checksum(body)) throw corrupt('checksum mismatch')
  return { signer: body.signer as Address, entries: body.entries, closed: body.closed }
}

/**
 * Opens (or, with `create`, creates) the record of `signer` at `path`.
 *
 * @example
 * ```ts
 * import { writeFileAtomic } from '@digicap/cli-kit'
 * const signedVotes = await fileSignedVotes({ path: join(dataDir, 'signed-votes.json'), signer: address })({ writeFileAtomic })
 * verifierNode(init)({ ...components, signedVotes })
 * ```
 * @throws {SignedVoteError} `missing` (no record and not `create`), `corrupt` (unreadable),
 * `identity` (another key's record), `io` (it could not be read or created).
 */
export function fileSignedVotes(
  init: FileSignedVotesInit,
): (components: FileSignedVotesComponents) => Promise<SignedVoteBook> {
  return async ({ writeFileAtomic }) => {
    const { path, signer } = init
    const persist = (s: SignedVoteSnapshot) => writeFileAtomic(path, encodeSignedVotes(s))
    const options = {
      persist,
      ...(init.maxEntries === undefined ? {} : { maxEntries: init.maxEntries }),
      ...(init.maxClosed === undefined ? {} : { maxClosed: init.maxClosed }),
    }
    let text: string | undefined
    try {
      text = await readFile(path, 'utf8')
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new SignedVoteError('io', 'The signed-vote record could not be read', {
          details: { path },
          cause,
          hint: 'Fix the permissions of the data folder.',
        })
      }
    }
    if (text === undefined) {
      if (init.create !== true) {
        throw new SignedVoteError('missing', 'This verifier has no signed-vote record', {
          details: { path },
          hint: 'It lives beside the key and `executor-node init` creates it. If this key never signed votes from another folder (a folder made before the record existed, or every job it served has closed on chain), start once with --new-vote-record; otherwise restore the file.',
        })
      }
      const fresh: SignedVoteSnapshot = { signer, entries: [], closed: [] }
      try {
        await persist(fresh)
      } catch (cause) {
        throw new SignedVoteError('io', 'The signed-vote record could not be created', {
          details: { path },
          cause,
        })
      }
      return new SignedVoteBook(fresh, options)
    }
    const snapshot = decodeSignedVotes(text, path)
    if (snapshot.signer !== signer.toLowerCase()) {
      throw new SignedVoteError('identity', "The signed-vote record is another key's", {
        details: { path, record: snapshot.signer, signer },
        hint: "Each verifier key keeps its own record: use this key's data folder.",
      })
    }
    return new SignedVoteBook(snapshot, options)
  }
}
