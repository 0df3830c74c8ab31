/** The minimum version in an `engines.node` range of the form ">=X[.Y[.Z]]". */
export declare function minimumNode(range: string): [number, number, number]
/** The one-line refusal for `found`, or undefined when `found` satisfies `range`. */
export declare function nodeVersionProblem(
  name: string,
  range: string,
  found: string,
): string | undefined
/** Exits 1 with one line on stderr when this Node is older than the package's engines.node. */
export declare function requireNode(name: string, packageJsonUrl: URL): void
