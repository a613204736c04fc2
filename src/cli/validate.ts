import { parseArgs, UsageError, type Command } from './command.js';
import { loadPlan } from './common.js';
import { Pipeline } from '../core/pipeline.js';
import { createLogger } from '../observe/log.js';

export const validateCommand: Command = {
  name: 'validate',
  summary: 'Check a pipeline: config, parsers, policies and rules (errors as file:line:col)',
  usage: `Usage: logwarden validate -c PIPELINE.yaml

Loads the pipeline and everything it references (parsers, audit policies, rule files, lookup
tables) without opening any socket. Prints OK and a summary, or every error as
FILE:LINE:COL: option: what was found, what is expected; exits 1 on errors.`,
  async run(args) {
    const a = parseArgs(args, { values: { '-c': 'config', '--config': 'config' }, booleans: {} });
    const file = a.flags.get('config')?.[0] ?? a.positionals[0];
    if (!file) throw new UsageError('missing -c PIPELINE.yaml');
    const p = loadPlan(file);
    const pipeline = new Pipeline(p, { logger: createLogger('error', 'json') });
    await pipeline.build();
    await pipeline.close();
    const list = (xs: { id: string }[]) => xs.map((x) => x.id).join(', ') || '-';
    process.stdout.write(`OK ${p.file}\n  inputs:  ${list(p.inputs)}\n  filters: ${list(p.filters)}\n  outputs: ${list(p.outputs)}\n`);
    return 0;
  },
};
