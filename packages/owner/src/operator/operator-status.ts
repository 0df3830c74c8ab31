/** What `status` says of the keyguard operator account; no chain code loads here. */

export interface OperatorStatus {
  /** The operator's address; absent for an owner file that predates it. */
  address?: string
  /** `CapsuleRegistry.isOperator(owner, operator)`; absent if the chain did not answer. */
  approved?: boolean
  /** The operator's ETH balance (pays the audit transactions' gas). */
  balanceWei?: string
  /** What is missing and how to fix it. */
  warning?: string
}

/** What is missing of an operator's set-up, in words for the owner; undefined if nothing. */
export function operatorWarning(s: OperatorStatus): string | undefined {
  if (s.address === undefined) {
    return 'This owner file predates the keyguard operator account: fast-path audit records use the owner account and may race its transactions. Run `pi-node recover` with the words to add the operator.'
  }
  const missing: string[] = []
  if (s.approved === false) {
    missing.push(
      `not approved by the owner (\`pi-node serve\` approves it once the owner has ETH, or send CapsuleRegistry.setOperator(${s.address}, true) from the owner)`,
    )
  }
  if (s.balanceWei === '0')
    missing.push(`no ETH for gas (send some to ${s.address}, e.g. 0.05 ETH)`)
  return missing.length
    ? `Keyguard operator ${s.address}: ${missing.join('; ')}. Fast-path audit records fail until then.`
    : undefined
}

/** `s` with its warning, if any. */
export function withOperatorWarning(s: OperatorStatus): OperatorStatus {
  const warning = operatorWarning(s)
  return warning ? { ...s, warning } : s
}
