import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file is compiled to dist/test/support/). */
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
/** The shared conformance data and references, next to the repository unless LOGWARDEN_SHARED says otherwise. */
export const sharedDir = process.env.LOGWARDEN_SHARED ?? join(repoRoot, '..', 'shared');
