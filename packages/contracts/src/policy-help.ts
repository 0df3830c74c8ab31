/**
 * `@digicap/contracts/policy-help`: the policy expression grammar in a few lines, the help text
 * of every command that takes one. Its own entry, with no imports: `--help` loads nothing else.
 */
export const POLICY_EXPRESSION_HELP = `Policy expressions (conditions minReputation(n), allowlist(['0x..', ...]), denylist([...]),
environment('0x<64 hex>'), after(date), before(date), maxRuns(n), fee('0.01'), combined with
all(...), any(...), not(x); hex and dates are quoted; dates ISO 8601 with Z or unix seconds):
  --policy 'maxRuns(3)'                                   at most 3 grants
  --policy 'all(minReputation(50), maxRuns(3))'           reputable executors, 3 runs
  --policy "all(environment('0x<64 hex>'), before('2027-01-01T00:00:00Z'), fee('0.01'))"
  --policy "any(allowlist(['0x<40 hex>', '0x<40 hex>']), minReputation(500))"
  --policy "all(not(denylist(['0x<40 hex>'])), maxRuns(10))"
  (the @digicap/contracts README has the full grammar)`
