/** The pi-node's files of the ops port (its flags are `@digicap/ops/flags`'). */
export { OPS_FILE } from '@digicap/ops/flags'
/** The status page's token (0600), created on first use; `status` prints it. */
export const STATUS_TOKEN_FILE = 'status-token'
