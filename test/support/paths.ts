import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file is compiled to dist/test/support/). */
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
/**
 * Test data kept in the repository: the Falco k8s_audit and Kubernetes audit-policy conformance
 * corpora (test/fixtures/conformance/, with their LICENSE-NOTICE) and the reference example policy
 * (test/fixtures/reference/). Every test reads from here, never from outside the repository.
 */
export const fixturesDir = join(repoRoot, 'test', 'fixtures');
/** test/fixtures/conformance: `falco-k8saudit/` and `k8s-audit-policy/`. */
export const conformanceDir = join(fixturesDir, 'conformance');
/** The Falco k8s_audit corpus: events/, rules/, cases.yaml, FIELDS.md, LICENSE-NOTICE. */
export const falcoCorpus = join(conformanceDir, 'falco-k8saudit');
