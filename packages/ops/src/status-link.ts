/**
 * `@digicap/ops/status-link`: where a running daemon serves its status page, read from its data
 * folder by a one-shot command (`pi-node status`). Light: no metrics or HTTP code loads here.
 */
export {
  type StatusPageLink,
  statusLoginCode,
  statusPageLine,
  statusPageLink,
} from './daemon/status-link.ts'
