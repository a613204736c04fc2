/** The command table: one entry per file in src/cli/. */
import type { Command } from './command.js';

export const commands: Command[] = [];
