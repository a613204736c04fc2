/** The command table: one entry per file in src/cli/. */
import type { Command } from './command.js';
import { runCommand } from './run.js';
import { validateCommand } from './validate.js';
import { replayCommand } from './replay.js';
import { sendCommand } from './send.js';
import { detectCommand } from './detect.js';

export const commands: Command[] = [runCommand, validateCommand, replayCommand, sendCommand, detectCommand];
