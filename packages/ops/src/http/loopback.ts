/** Whether a listen host is a loopback interface (the only kind the ops server takes by default). */
import { isIP } from 'node:net'

export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase()
  if (h === 'localhost') return true
  if (isIP(h) === 4) return h.startsWith('127.')
  if (isIP(h) === 6) return h === '::1' || /^::ffff:127\./.test(h)
  return false
}
