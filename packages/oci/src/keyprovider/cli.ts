/**
 * `digicap-oci-keyprovider`: the command ocicrypt-based tools (skopeo, podman, buildah,
 * containerd's imgcrypt) run for `provider:digicap`. Configure it in the file that
 * `OCICRYPT_KEYPROVIDER_CONFIG` names:
 *
 *   {"key-providers":{"digicap":{"cmd":{"path":"/usr/local/bin/digicap-oci-keyprovider","args":[]}}}}
 *
 * then `skopeo copy --encryption-key provider:digicap:<capsule key file> …` seals layers to the
 * capsule and `--decryption-key provider:digicap:<capsule key file>` opens them on the owner's
 * machine. An executor composes {@link keyProviderHandler} with its grant flow instead.
 */
import { digicapRecipient, digicapUnwrapper } from '../digicap/recipient.ts'
import { OciKeyError, OciLimitError } from '../errors.ts'
import { readCapsuleKeyFile } from './capsule-key-file.ts'
import { keyProviderHandler } from './handler.ts'
import { MAX_KEYPROVIDER_REQUEST_LENGTH } from './protocol.ts'

const decoder = new TextDecoder()

/** The provider name this command answers to. */
export const DIGICAP_KEYPROVIDER_NAME = 'digicap'

/** The file-based handler: every parameter value is a capsule key file path. */
export function fileKeyProvider(): (request: Uint8Array) => Promise<Uint8Array> {
  return keyProviderHandler({
    name: DIGICAP_KEYPROVIDER_NAME,
    recipientFor: async (value) =>
      digicapRecipient(await readCapsuleKeyFile(decoder.decode(value))),
    unwrapperFor: async (values) => {
      const keys = await Promise.all(values.map((v) => readCapsuleKeyFile(decoder.decode(v))))
      return digicapUnwrapper({
        dataKey: async ({ capsuleId }) => {
          const key = keys.find((k) => k.capsuleId === capsuleId)
          if (!key) {
            throw new OciKeyError('No capsule key file for this capsule', {
              details: { capsule: capsuleId, files: keys.length },
            })
          }
          return key.dataKey
        },
      })
    },
  })
}

async function readAll(input: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = []
  let length = 0
  for await (const chunk of input) {
    length += chunk.length
    if (length > MAX_KEYPROVIDER_REQUEST_LENGTH) {
      throw new OciLimitError('Keyprovider request is too long')
    }
    chunks.push(chunk)
  }
  return Buffer.concat(chunks)
}

/**
 * Runs the command: reads the request from `stdin`, writes the answer to `stdout`. On error,
 * one line on `stderr` (code and short message, never key material) and exit code 1, which
 * ocicrypt treats as "this provider cannot unwrap" and moves on.
 */
export async function runKeyProviderCli(
  io: {
    stdin: AsyncIterable<Uint8Array>
    stdout: { write(bytes: Uint8Array): unknown }
    stderr: { write(text: string): unknown }
  } = process,
): Promise<number> {
  try {
    const answer = await fileKeyProvider()(await readAll(io.stdin))
    io.stdout.write(answer)
    return 0
  } catch (error) {
    const e = error as { code?: string; shortMessage?: string; message?: string }
    io.stderr.write(
      `digicap-oci-keyprovider: ${e.code ?? 'ERROR'}: ${e.shortMessage ?? e.message}\n`,
    )
    return 1
  }
}
